#!/usr/bin/env bash
# Installs what building and testing vinit needs on a fresh Debian machine
# (as root): the musl target and tools, the PID-namespace and terminal tools
# the tests use (setpriv; strace for the leak hunt), openssl (test keys),
# PostgreSQL's server (dynamic credentials), debootstrap and busybox-static
# (the bakery's base images), the pinned OpenBao (scripts/openbao.sh),
# rustfmt/clippy.
# Quick when everything is already there.
#   scripts/install-deps.sh --build   only what building needs (musl target, musl-tools)
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

if [ "${1:-}" = "--build" ]; then
  if ! command -v musl-gcc >/dev/null; then
    apt-get update -qq
    apt-get install -y -qq musl-tools >/dev/null
  fi
  rustup target list --installed | grep -qx x86_64-unknown-linux-musl || rustup target add x86_64-unknown-linux-musl
  exit 0
fi

packages=()
command -v musl-gcc >/dev/null || packages+=(musl-tools)
command -v unshare >/dev/null || packages+=(util-linux)
command -v script >/dev/null || packages+=(bsdutils)
command -v file >/dev/null || packages+=(file)
command -v openssl >/dev/null || packages+=(openssl)
command -v curl >/dev/null || packages+=(curl)
command -v runuser >/dev/null || packages+=(util-linux)
command -v setpriv >/dev/null || packages+=(util-linux)
command -v strace >/dev/null || packages+=(strace)
command -v psql >/dev/null || packages+=(postgresql-client)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || packages+=(postgresql)
command -v python3 >/dev/null || packages+=(python3 python3-pip)
# The bakery's base images (images/build.sh): a Debian minbase root
# filesystem and a static busybox.
command -v debootstrap >/dev/null || packages+=(debootstrap)
dpkg -s busybox-static >/dev/null 2>&1 || packages+=(busybox-static)
if [ ${#packages[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq "${packages[@]}" >/dev/null
fi

rustup target list --installed | grep -qx x86_64-unknown-linux-musl || rustup target add x86_64-unknown-linux-musl
rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed | grep -q '^clippy' || rustup component add clippy

# OpenBao for the integration tests: the pinned version, into .tools/.
"$(dirname "$0")/openbao.sh" path >/dev/null
