#!/usr/bin/env bash
# Throughput of the app's output through vinit, with and without --redact:
# the app writes 1 GiB of log lines (`yes LINE | head -c 1G`) into a reader
# (`cat > /dev/null`, as Docker's log FIFO reader would), measured
#   - plain: the app alone, no vinit;
#   - vinit: the app under vinit (output inherited, vinit copies nothing);
#   - vinit --redact: ten secret values (16 to 40 bytes) hidden, lines free of them;
#   - vinit --redact, worst case: every line holds one of the values.
# Values come from a loopback stand-in for Vault (a KV v2 answer for any GET).
# Best of 3 runs each. Rerun any time:  bench/redact.sh [BYTES]
# (bench/run's redact section calls it with VINIT set to the binary to measure.)
set -euo pipefail
cd "$(dirname "$0")/.."
bytes=${1:-1073741824}
if [ -z "${VINIT:-}" ]; then
  cargo build --release --bin vinit --quiet
fi
vinit=${VINIT:-$PWD/target/x86_64-unknown-linux-musl/release/vinit}
work=$(mktemp -d)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

python3 - "$work/port" <<'PY' &
import http.server, json, sys
values = {f"key{i}": f"s3cr3t-value-{i:02d}-" + "x" * (i * 3) for i in range(10)}
body = json.dumps({"data": {"data": values, "metadata": {"version": 1}}}).encode()
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
open(sys.argv[1], "w").write(str(server.server_port))
server.serve_forever()
PY
server_pid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.05; done
export VAULT_ADDR="http://127.0.0.1:$(cat "$work/port")" VAULT_TOKEN=bench-token
for i in $(seq 0 9); do export "SECRET_$i=vault:secret/data/app#key$i"; done

line='2026-12-01T21:00:00.123Z INFO http: GET /api/v1/items?page=2 status=200 duration=12ms bytes=5120'
secret_line="$line password=s3cr3t-value-04-xxxxxxxxxxxx"
app() { printf 'yes "%s" | head -c %s' "$1" "$bytes"; }

best_of_3() {
  local best=
  for _ in 1 2 3; do
    local start end
    start=$(date +%s.%N)
    "$@" | cat >/dev/null
    end=$(date +%s.%N)
    best=$(python3 -c "import sys; t=$end-$start; b='$best'; print(t if not b or t<float(b) else b)")
  done
  python3 -c "t=$best; print(f'{t:7.2f} s  {$bytes/t/1e6:8.0f} MB/s')"
}

echo "== $bytes bytes of output through a pipe reader, best of 3 =="
printf '  %-28s ' "plain (no vinit)";          best_of_3 sh -c "$(app "$line")"
printf '  %-28s ' "vinit";                     best_of_3 "$vinit" -- sh -c "$(app "$line")"
printf '  %-28s ' "vinit --redact";            best_of_3 "$vinit" --redact -- sh -c "$(app "$line")"
printf '  %-28s ' "vinit --redact, every line"; best_of_3 "$vinit" --redact -- sh -c "$(app "$secret_line")"
echo "  check: $("$vinit" --redact -- sh -c "echo '$secret_line'" | grep -c '\[redacted\]') redacted line(s) of 1"
