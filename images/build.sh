#!/usr/bin/env bash
# Builds the static release binaries and the scratch image `vinit-demo`.
# Usage: images/build.sh [TAG]
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-vinit-demo}
cargo build --release --bins
bin=target/x86_64-unknown-linux-musl/release
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp images/Dockerfile "$bin/vinit" "$bin/vinit-probe" "$context/"
docker build --quiet --tag "$tag" "$context" >/dev/null
echo "built image $tag ($(stat -c %s "$bin/vinit") bytes of vinit)"
