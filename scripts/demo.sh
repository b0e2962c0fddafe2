#!/usr/bin/env bash
# Builds vinit and runs it as PID 1 of a fresh PID namespace (needs root):
# the app sees vinit as PID 1, an orphan is reaped, SIGTERM reaches the app
# and vinit exits with the app's status.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bins --quiet
vinit=$PWD/target/x86_64-unknown-linux-musl/release/vinit

app='
echo "app: I am pid $$; my parent is pid $PPID"
sh -c "sleep 0.2 &" # leaves an orphan for PID 1 to reap
trap "echo app: got SIGTERM, exiting 3; exit 3" TERM
echo "app: processes in this namespace:"; ps -o pid,ppid,pgid,stat,comm
while :; do sleep 0.1; done
'
echo "\$ unshare --pid --fork --mount-proc vinit -- sh -c '...'   (SIGTERM after 1s)"
unshare --pid --fork --mount-proc "$vinit" -- sh -c "$app" &
launcher=$!
sleep 1
# vinit is unshare's only child; signal it as an orchestrator would.
kill -TERM "$(cat /proc/$launcher/task/$launcher/children)"
set +e; wait "$launcher"; code=$?; set -e
echo "vinit exited with $code (the app's status)"
