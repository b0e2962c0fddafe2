#!/usr/bin/env bash
# The five-minute demo (needs root for the PID namespace):
#  1. builds vinit;
#  2. starts a local OpenBao dev server (installed by scripts/openbao.sh when missing);
#  3. seeds secret/demo and an AppRole allowed to read it;
#  4. runs a shell "app" under vinit as PID 1 of a fresh PID namespace, with
#     two environment references and a template rendered to tmpfs; the app
#     prints what it received (names and masked values), then gets SIGTERM.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bins --quiet
vinit=$PWD/target/x86_64-unknown-linux-musl/release/vinit
bao=$(scripts/openbao.sh path)

work=$(mktemp -d)
out=$(mktemp -d /dev/shm/vinit-demo.XXXXXX)   # tmpfs: vinit refuses to write secrets to disk
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bao" server -dev -dev-root-token-id=root -dev-listen-address="127.0.0.1:$port" >"$work/openbao.log" 2>&1 &
bao_pid=$!
trap 'kill $bao_pid 2>/dev/null; rm -rf "$work" "$out"' EXIT
export VAULT_ADDR="http://127.0.0.1:$port"
for _ in $(seq 50); do VAULT_TOKEN=root "$bao" status >/dev/null 2>&1 && break; sleep 0.1; done

echo "== OpenBao dev server at $VAULT_ADDR; seeding secret/demo and an AppRole =="
root() { VAULT_TOKEN=root "$bao" "$@" >/dev/null; }
root kv put secret/demo db_password=correct-horse-battery api_key=ak_live_51f0c2
printf 'path "secret/data/demo" { capabilities = ["read"] }\n' | VAULT_TOKEN=root "$bao" policy write demo - >/dev/null
root auth enable approle
root write auth/approle/role/demo token_policies=demo token_ttl=1h
role_id=$(VAULT_TOKEN=root "$bao" read -field=role_id auth/approle/role/demo/role-id)
VAULT_TOKEN=root "$bao" write -f -field=secret_id auth/approle/role/demo/secret-id >"$work/secret_id"

cat >"$work/vinit.toml" <<TOML
[auth]
method = "approle"
role_id = "$role_id"
secret_id_file = "secret_id"          # relative to this file

[[template]]
contents = """
database:
  password: {{ secret("secret/data/demo").db_password | tojson }}
"""
destination = "$out/app.yaml"
TOML

app='
mask() { printf "%s***(%d chars)" "$(printf %s "$1" | cut -c1-3)" "${#1}"; }
echo "app: pid $$, parent $PPID"
echo "app: DB_PASSWORD=$(mask "$DB_PASSWORD")"
echo "app: API_URL=$(printf %s "$API_URL" | sed "s/key=.*/key=/")$(mask "${API_URL#*key=}")"
echo "app: VAULT_TOKEN=${VAULT_TOKEN:-<not set>} VINIT_AUTH_METHOD=${VINIT_AUTH_METHOD:-<not set>}"
echo "app: $(ls -l '"$out"'/app.yaml | cut -d" " -f1,3,4) '"$out"'/app.yaml: $(grep -c password '"$out"'/app.yaml) password line"
trap "echo app: SIGTERM, exiting 0; exit 0" TERM
while :; do sleep 0.1; done
'
echo "== unshare --pid --fork --mount-proc vinit --config vinit.toml -- sh -c '...' =="
VINIT_AUTH_METHOD=approle \
DB_PASSWORD='vault:secret/data/demo#db_password' \
API_URL='https://api.example/v1?key=${vault:secret/data/demo#api_key}' \
  unshare --pid --fork --mount-proc "$vinit" --config "$work/vinit.toml" -- sh -c "$app" &
launcher=$!
sleep 1.5
kill -TERM "$(cat /proc/$launcher/task/$launcher/children)"
set +e; wait "$launcher"; code=$?; set -e
echo "== vinit exited with $code (the app's status) =="
