#!/usr/bin/env python3
"""Start-up with secrets: vinit vs OpenBao Agent's exec mode.

Both start the same COMMAND (the test probe, which writes CLOCK_MONOTONIC as
its first act) with ten environment variables from five KV v2 paths, logging
in with AppRole to a local OpenBao dev server. Measured: nanoseconds from the
moment the benchmark starts the tool to the moment COMMAND runs (the same
clock on both ends), median of RUNS runs. Also measured, as SPEC.md's budget
asks: one AppRole login plus one read made by a plain HTTP client
(http.client, a new connection each, as vinit's first requests are).

Usage: bench/secrets-startup.py [RUNS]   (default 20; builds vinit, starts OpenBao)
"""
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 20
PATHS = [f"secret/data/app{i}" for i in range(1, 6)]
KEYS = ["user", "password"]


def sh(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw).stdout.strip()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    subprocess.run(["cargo", "build", "--release", "--bins", "--quiet"], cwd=ROOT, check=True)
    target = os.path.join(ROOT, "target/x86_64-unknown-linux-musl/release")
    vinit, probe = os.path.join(target, "vinit"), os.path.join(target, "vinit-probe")
    bao = sh(os.path.join(ROOT, "scripts/openbao.sh"), "path")
    work = tempfile.mkdtemp()
    port = free_port()
    addr = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [bao, "server", "-dev", "-dev-root-token-id=root", f"-dev-listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        root = dict(os.environ, VAULT_ADDR=addr, VAULT_TOKEN="root")
        for _ in range(100):
            if subprocess.run([bao, "status"], env=root, capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        for i, path in enumerate(PATHS, 1):
            sh(bao, "kv", "put", path.replace("/data/", "/"), f"user=u{i}", f"password=p{i}", env=root)
        policy = "".join(f'path "{p}" {{ capabilities = ["read"] }}\n' for p in PATHS)
        subprocess.run([bao, "policy", "write", "app", "-"], input=policy, text=True, env=root, check=True,
                       capture_output=True)
        sh(bao, "auth", "enable", "approle", env=root)
        sh(bao, "write", "auth/approle/role/app", "token_policies=app", "token_ttl=1h", env=root)
        role_id = sh(bao, "read", "-field=role_id", "auth/approle/role/app/role-id", env=root)
        secret_id = sh(bao, "write", "-f", "-field=secret_id", "auth/approle/role/app/secret-id", env=root)
        for name, value in (("role_id", role_id), ("secret_id", secret_id)):
            with open(os.path.join(work, name), "w") as f:
                f.write(value)

        stamp = os.path.join(work, "stamp")
        refs = {f"{key.upper()}_{i}": f"vault:{path}#{key}" for i, path in enumerate(PATHS, 1) for key in KEYS}

        def timed(argv, env):
            if os.path.exists(stamp):
                os.remove(stamp)
            start = time.monotonic_ns()
            done = subprocess.run(argv, env=env, capture_output=True, text=True)
            if done.returncode != 0 or not os.path.exists(stamp):
                raise SystemExit(f"{argv[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
            return (int(open(stamp).read()) - start) / 1e6

        vinit_env = dict(os.environ, VAULT_ADDR=addr, VINIT_AUTH_METHOD="approle",
                         VINIT_ROLE_ID_FILE=os.path.join(work, "role_id"),
                         VINIT_SECRET_ID_FILE=os.path.join(work, "secret_id"), **refs)
        vinit_env.pop("VAULT_TOKEN", None)

        templates = "".join(
            f'env_template "{name}" {{\n  contents = "{{{{ with secret \\"{ref[6:].split("#")[0]}\\" }}}}'
            f'{{{{ .Data.data.{ref.split("#")[1]} }}}}{{{{ end }}}}"\n  error_on_missing_key = true\n}}\n'
            for name, ref in refs.items())
        agent_config = os.path.join(work, "agent.hcl")
        with open(agent_config, "w") as f:
            f.write(f'''
vault {{ address = "{addr}" }}
auto_auth {{
  method "approle" {{
    config = {{
      role_id_file_path = "{work}/role_id"
      secret_id_file_path = "{work}/secret_id"
      remove_secret_id_file_after_reading = false
    }}
  }}
}}
template_config {{ exit_on_retry_failure = true }}
{templates}
exec {{
  command = ["{probe}", "stamp={stamp}"]
  restart_on_secret_changes = "never"
}}
''')
        agent_env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}

        def login_plus_read():
            start = time.monotonic_ns()
            conn = http.client.HTTPConnection("127.0.0.1", port)
            conn.request("POST", "/v1/auth/approle/login",
                         json.dumps({"role_id": role_id, "secret_id": secret_id}))
            token = json.loads(conn.getresponse().read())["auth"]["client_token"]
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port)
            conn.request("GET", f"/v1/{PATHS[0]}", headers={"X-Vault-Token": token})
            conn.getresponse().read()
            conn.close()
            return (time.monotonic_ns() - start) / 1e6

        results = {}
        for name, run in (
            ("vinit", lambda: timed([vinit, "--", probe, f"stamp={stamp}"], vinit_env)),
            ("bao agent (exec)", lambda: timed([bao, "agent", f"-config={agent_config}"], agent_env)),
            ("plain HTTP: 1 login + 1 read", login_plus_read),
        ):
            run()  # warm-up
            results[name] = [run() for _ in range(RUNS)]

        # Peak memory: vinit supervising `sleep 1` after fetching the same secrets.
        sleeper = subprocess.Popen([vinit, "--", "sleep", "1"], env=vinit_env)
        time.sleep(0.6)
        with open(f"/proc/{sleeper.pid}/status") as status:
            hwm = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
        sleeper.wait()

        print(f"10 references over 5 KV v2 paths, AppRole, OpenBao on loopback; median of {RUNS} runs")
        print(f"{'':32s} {'median':>9s} {'min':>9s} {'max':>9s}")
        for name, samples in results.items():
            print(f"{name:32s} {statistics.median(samples):7.2f}ms {min(samples):7.2f}ms {max(samples):7.2f}ms")
        budget = statistics.median(results["plain HTTP: 1 login + 1 read"]) + 5
        got = statistics.median(results["vinit"])
        print(f"vinit peak RSS (VmHWM) supervising after those reads: {hwm} KiB; budget 5120 KiB -> "
              f"{'OK' if hwm <= 5120 else 'OVER'}")
        print(f"SPEC budget: vinit <= login + read + 5 ms = {budget:.2f} ms -> {'OK' if got <= budget else 'OVER'}"
              f" ({got:.2f} ms)")
    finally:
        server.kill()


if __name__ == "__main__":
    main()
