#!/usr/bin/env bash
# Builds the static binaries, puts them in the compose build context
# (compose/bin/, ignored by git) and starts the stack in the foreground.
#   compose/up.sh [--openbao] [docker-compose up options...]
# Stop with Ctrl-C, then `docker-compose -f compose/compose.yaml down`.
set -euo pipefail
cd "$(dirname "$0")"
files=(-f compose.yaml)
if [ "${1:-}" = "--openbao" ]; then
  shift
  files+=(-f compose.openbao.yaml)
fi
(cd .. && cargo build --release --quiet --workspace --bins)
mkdir -p bin
release=../target/x86_64-unknown-linux-musl/release
cp "$release/vinit" "$release/vinit-mock-vault" "$release/vinit-demo-app" bin/
if [ ${#files[@]} -gt 2 ]; then
  cp "$(../scripts/openbao.sh path)" openbao/bao
fi
compose=(docker-compose)
command -v docker-compose >/dev/null || compose=(docker compose)
exec "${compose[@]}" "${files[@]}" up --build "$@"
