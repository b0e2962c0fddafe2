#!/usr/bin/env bash
# Fuzzes vinit's parsers and its redaction matcher with cargo-fuzz
# (libFuzzer), each target for a bounded time. Not part of CI.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 240 s, every target)
#
# Needs the nightly toolchain (installed on the project's machines) and
# cargo-fuzz (installed here when missing). Builds for the gnu target:
# .cargo/config.toml makes musl the default, and libFuzzer's sanitizers
# need glibc. Crashes land in fuzz/artifacts/TARGET/; each one found is
# fixed and kept as a unit test next to the code it broke. The corpus
# (fuzz/corpus/TARGET/) carries over between runs.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:-240}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
command -v cargo-fuzz >/dev/null || cargo +stable install cargo-fuzz --locked
host=x86_64-unknown-linux-gnu
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target" "artifacts/$target"
    log="artifacts/$target/last-run.log"
    echo "== $target: ${seconds}s"
    status=0
    cargo +nightly fuzz run --target "$host" "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1 || status=$?
    runs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}' | tail -1)
    echo "   executions: ${runs:-?}, exit status: $status (log: fuzz/$log)"
    grep -E 'panicked at|SUMMARY|Test unit written' "$log" | head -5 | sed 's/^/   /' || true
done
