#!/usr/bin/env bash
# Benchmarks vinit as a plain init against tini, dumb-init and catatonit
# (Debian packages), and reports its size and peak memory while supervising.
# SPEC budgets: start-up within 1.5x of tini's; static binary <= 3,000,000
# bytes; peak RSS while supervising <= 5 MiB. Rerun any time:
#   bench/plain-init.sh            (installs hyperfine/tini/dumb-init/catatonit if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
for tool in hyperfine tini dumb-init catatonit; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
cargo build --release --bins --quiet
vinit=target/x86_64-unknown-linux-musl/release/vinit
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "== start-up + exit of 'INIT -- /bin/true' (hyperfine, 500 runs, median) =="
hyperfine --shell=none --warmup 50 --runs 500 --export-json "$out/h.json" \
  -n vinit "$vinit -- /bin/true" -n tini "tini -s -- /bin/true" \
  -n dumb-init "dumb-init /bin/true" -n catatonit "catatonit -- /bin/true" >/dev/null
python3 - "$out/h.json" <<'PY'
import json, sys
results = {r["command"]: r["median"] for r in json.load(open(sys.argv[1]))["results"]}
for name, median in results.items():
    print(f"  {name:10s} {median * 1000:6.3f} ms   {median / results['tini']:.2f}x tini")
ratio = results["vinit"] / results["tini"]
print(f"  budget: vinit <= 1.5x tini -> {'OK' if ratio <= 1.5 else 'OVER'} ({ratio:.2f}x)")
PY

size=$(stat -c %s "$vinit")
echo "== size =="
echo "  $vinit: $size bytes ($(file -b "$vinit" | cut -d, -f1-2)); budget 3,000,000 -> $([ "$size" -le 3000000 ] && echo OK || echo OVER)"

echo "== peak RSS while supervising (VmHWM after 1s with a sleeping app and 200 reaped orphans) =="
"$vinit" -- sh -c 'for i in $(seq 200); do (sleep 0 &); done; sleep 1' &
pid=$!
sleep 0.8
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
wait "$pid"
echo "  vinit VmHWM: ${hwm} KiB; budget 5120 KiB -> $([ "$hwm" -le 5120 ] && echo OK || echo OVER)"
