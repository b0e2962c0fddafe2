#!/usr/bin/env bash
# The five-minute demo, on a fresh machine:
#  1. installs what building needs when it is missing (the musl target,
#     musl-tools: scripts/install-deps.sh --build);
#  2. builds vinit, vinit-mock-vault and the demo app (static musl);
#  3. starts vinit-mock-vault from a seed (secret/demo and an AppRole), or
#     with --openbao a local OpenBao dev server seeded through its CLI;
#  4. runs the demo app under vinit, as PID 1 of a fresh PID namespace when
#     root (else as a subreaper), with two environment references and a
#     template rendered to tmpfs; the app prints what it received (names
#     and masked values), then gets SIGTERM.
#
#   scripts/demo.sh [--openbao]
set -euo pipefail
cd "$(dirname "$0")/.."
backend=mock
case "${1:-}" in
  "") ;;
  --openbao) backend=openbao ;;
  *) echo "usage: $0 [--openbao]" >&2; exit 64 ;;
esac

echo "== installing what the build needs (quick when present) =="
scripts/install-deps.sh --build
echo "== cargo build --release (vinit, vinit-mock-vault, the demo app) =="
cargo build --release --workspace --bins --quiet
bin=$PWD/target/x86_64-unknown-linux-musl/release

work=$(mktemp -d)
out=$(mktemp -d /dev/shm/vinit-demo.XXXXXX)   # tmpfs: vinit refuses to write secrets to disk
server_pid=
trap '[ -n "$server_pid" ] && kill $server_pid 2>/dev/null; rm -rf "$work" "$out"' EXIT

if [ "$backend" = mock ]; then
  cat >"$work/seed.yaml" <<'YAML'
policies:
  demo: [secret/data/demo]
kv:
  secret:
    secrets:
      demo: {db_password: correct-horse-battery, api_key: ak_live_51f0c2}
auth:
  approle:
    type: approle
    roles:
      demo: {role_id: demo-role-id, secret_ids: [demo-secret-id], policies: [demo], ttl: 1h}
YAML
  "$bin/vinit-mock-vault" --seed "$work/seed.yaml" --listen 127.0.0.1:0 >"$work/vault.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do grep -q listening "$work/vault.log" 2>/dev/null && break; sleep 0.02; done
  export VAULT_ADDR=$(sed -n 's/.*listening on //p' "$work/vault.log")
  echo "== vinit-mock-vault at $VAULT_ADDR, seeded from a file (secret/demo, an AppRole) =="
  role_id=demo-role-id
  echo demo-secret-id >"$work/secret_id"
else
  bao=$(scripts/openbao.sh path)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$bao" server -dev -dev-root-token-id=root -dev-listen-address="127.0.0.1:$port" >"$work/vault.log" 2>&1 &
  server_pid=$!
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
fi

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

launch=("$bin/vinit")
if [ "$(id -u)" = 0 ]; then
  launch=(unshare --pid --fork --mount-proc "$bin/vinit")
fi
echo "== ${launch[*]##*/} --config vinit.toml -- vinit-demo-app ... =="
VINIT_AUTH_METHOD=approle \
DB_PASSWORD='vault:secret/data/demo#db_password' \
API_URL='https://api.example/v1?key=${vault:secret/data/demo#api_key}' \
  "${launch[@]}" --config "$work/vinit.toml" -- \
  "$bin/vinit-demo-app" --env DB_PASSWORD --env API_URL --file "$out/app.yaml" >"$work/app.log" 2>&1 &
launcher=$!
for _ in $(seq 100); do grep -q "ready" "$work/app.log" 2>/dev/null && break; kill -0 $launcher 2>/dev/null || break; sleep 0.05; done
# vinit is the launcher itself, or unshare's child.
vinit_pid=$(cat "/proc/$launcher/task/$launcher/children" 2>/dev/null | awk '{print $1}')
[ "${launch[0]}" = unshare ] || vinit_pid=$launcher
[ -n "$vinit_pid" ] && kill -TERM "$vinit_pid" 2>/dev/null || true
set +e; wait "$launcher"; code=$?; set -e
cat "$work/app.log"
echo "== vinit exited with $code (the app's status) =="
if [ "$backend" = mock ]; then
  echo "== the mock's request log (method, path, status; never a value) =="
  grep -v listening "$work/vault.log"
fi
exit "$code"
