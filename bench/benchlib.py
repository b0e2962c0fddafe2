"""What every section of bench/run shares: paths, statistics, the results file and its
table and plots, and a throw-away OpenBao server (dev mode, optionally TLS and an audit log)."""
import datetime
import json
import os
import socket
import statistics
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASE = os.path.join(ROOT, "target", "x86_64-unknown-linux-musl", "release")
# `bench/run --vinit PATH` measures another build (an older commit's, for a before/after).
VINIT = os.environ.get("BENCH_VINIT") or os.path.join(RELEASE, "vinit")
PROBE = os.path.join(RELEASE, "vinit-probe")
FLOOR = os.path.join(RELEASE, "vinit-bench-floor")
# The peer every ratio is taken against: tini-static, the closest thing to vinit
# (a static init); the Agent for secrets.
PLAIN_PEER = "tini-static"

# How each peer runs COMMAND as a plain process (not PID 1): tini needs -s to reap as a
# subreaper; catatonit registers as one itself; dumb-init only reaps as PID 1.
INITS = {
    "vinit": [VINIT, "--"],
    "tini-static": ["tini-static", "-s", "--"],
    "tini": ["tini", "-s", "--"],
    "dumb-init": ["dumb-init"],
    "catatonit": ["catatonit", "--"],
}
PIDNS = ["unshare", "--pid", "--fork", "--mount-proc"]


def run_quiet(argv, **kw):
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kw).stdout.strip()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def quantile(samples, q):
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def rotated(items, round_number):
    """The tools in a different order each round, so none always runs first or last."""
    shift = round_number % len(items)
    return items[shift:] + items[:shift]


def proc_status(pid):
    """Fields of /proc/PID/status (kB values as ints), summed over threads for counters."""
    fields = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                name, _, value = line.partition(":")
                fields[name] = value.strip()
        switches = [0, 0]
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches"):
                        switches[0] += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches"):
                        switches[1] += int(line.split()[1])
        fields["switches"] = switches
        fields["threads"] = len(os.listdir(f"/proc/{pid}/task"))
    except FileNotFoundError:
        return None
    return fields


def cpu_seconds(pid):
    """User + system CPU time of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tcp_passive_opens():
    """Connections accepted in this network namespace so far (TCP PassiveOpens)."""
    with open("/proc/net/snmp") as f:
        lines = [line.split() for line in f if line.startswith("Tcp:")]
    return int(lines[1][lines[0].index("PassiveOpens")])


class Results:
    """Rows of one benchmark run: section, case, tool, samples; saved as JSON, a markdown
    table and plots. Rows of sections not rerun are kept from the previous results.json, so
    `--only fleet` refreshes the fleet rows and keeps the rest (each row carries its date)."""

    def __init__(self, out, machine, quick, command):
        self.out = out
        self.machine = machine
        self.quick = quick
        self.command = command
        self.started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        self.binary = binary_version()
        self.rows = []
        self.notes = {}
        self.fresh_sections = set()
        path = os.path.join(out, "results.json")
        self.previous = json.load(open(path)) if os.path.exists(path) else {"rows": [], "notes": {}}

    def add(self, section, case, tool, samples, unit, peer=None, lower_is_better=True, detail=""):
        """Adds one measurement; `peer` names the tool in the same case it is compared with."""
        self.fresh_sections.add(section)
        row = {
            "section": section, "case": case, "tool": tool, "unit": unit, "n": len(samples),
            "median": statistics.median(samples) if samples else float("nan"),
            "p25": quantile(samples, 0.25), "p75": quantile(samples, 0.75),
            "min": min(samples) if samples else float("nan"),
            "max": max(samples) if samples else float("nan"),
            "p99": quantile(samples, 0.99), "peer": peer, "lower_is_better": lower_is_better,
            "detail": detail, "date": self.started, "binary": self.binary,
            "samples": [round(s, 6) for s in samples],
        }
        self.rows.append(row)
        print(f"   {case:38s} {tool:28s} {format_value(row['median'], unit):>12s}"
              f"  [{format_value(row['p25'], unit)}–{format_value(row['p75'], unit)}]  {detail}", flush=True)
        return row

    def note(self, section, text):
        self.fresh_sections.add(section)
        self.notes.setdefault(section, []).append(text)
        print(f"   note: {text}", flush=True)

    def all_rows(self):
        kept = [r for r in self.previous["rows"] if r["section"] not in self.fresh_sections]
        return kept + self.rows

    def all_notes(self):
        notes = {s: n for s, n in self.previous.get("notes", {}).items() if s not in self.fresh_sections}
        notes.update(self.notes)
        return notes

    def save(self):
        rows = self.all_rows()
        with open(os.path.join(self.out, "results.json"), "w") as f:
            # One row per line: diffs between runs stay readable.
            head = {"machine": self.machine, "date": self.started, "command": self.command,
                    "notes": self.all_notes()}
            f.write(json.dumps(head)[:-1] + ', "rows": [\n')
            f.write(",\n".join(json.dumps(row) for row in rows))
            f.write("\n]}\n")
        try:
            import report
            report.plots(rows, self.out, self.machine, self.started)
        except ImportError as error:
            print(f"   plots skipped: {error}")
        with open(os.path.join(self.out, "results.md"), "w") as f:
            f.write(self.markdown(rows))

    def markdown(self, rows):
        from report import markdown
        return markdown(rows, self.all_notes(), self.machine, self.started, self.command, self.quick, self.out)


def binary_version():
    """The vinit measured: the commit it was built from (+ if the tree differs) and its size."""
    if os.environ.get("BENCH_VINIT"):
        return f"{VINIT} (--vinit), {os.path.getsize(VINIT):,} B"
    try:
        commit = run_quiet(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])
        dirty = run_quiet(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no", "--", "src",
                           "Cargo.toml", "Cargo.lock"])
        return f"{commit}{'+' if dirty else ''}, {os.path.getsize(VINIT):,} B"
    except (subprocess.CalledProcessError, FileNotFoundError):
        return "unknown"


def format_value(value, unit):
    if value != value:  # NaN
        return "-"
    if unit in ("ms", "us"):
        return f"{value:,.3f} {unit}" if value < 10 else f"{value:,.1f} {unit}" if value < 1000 else f"{value:,.0f} {unit}"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f} {unit}".strip()
    return f"{int(value):,} {unit}".strip()


def rsa_certificates(work):
    """A CA and a server certificate for 127.0.0.1, both RSA-2048; returns (ca, cert, key)."""
    ca_key, ca, key, csr, cert = (os.path.join(work, n) for n in ("ca.key", "ca.pem", "server.key", "server.csr",
                                                                   "server.pem"))
    run_quiet(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca,
               "-days", "2", "-subj", "/CN=bench CA"])
    run_quiet(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
               "-subj", "/CN=127.0.0.1"])
    extensions = os.path.join(work, "san.ext")
    with open(extensions, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    run_quiet(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert,
               "-days", "2", "-extfile", extensions])
    return ca, cert, key


class OpenBao:
    """A dev-mode OpenBao on loopback with AppRole and KV v2 secrets for the benchmark.

    `tls`: False (http), "ecdsa" (-dev-tls: its own CA and a P-256 certificate) or "rsa" (a
    second listener with an RSA-2048 certificate from `openssl`, as many production Vaults
    have); the CA is `ca_cert`. `audit`: a file audit device whose entries `audit_entries()`
    counts, and Prometheus metrics. `paths`: {api path: {key: value}} written at start."""

    def __init__(self, work, paths, tls=False, audit=False, token_ttl="1h"):
        self.bao = run_quiet([os.path.join(ROOT, "scripts", "openbao.sh"), "path"])
        os.makedirs(work, exist_ok=True)
        self.work = work
        self.port = free_port()
        admin = f"{'https' if tls == 'ecdsa' else 'http'}://127.0.0.1:{self.port}"
        argv = [self.bao, "server", "-dev", "-dev-root-token-id=root",
                f"-dev-listen-address=127.0.0.1:{self.port}"]
        config = []
        self.ca_cert = None
        if tls == "ecdsa":
            argv += ["-dev-tls", f"-dev-tls-cert-dir={work}"]
            self.ca_cert = os.path.join(work, "vault-ca.pem")
        elif tls == "rsa":
            self.ca_cert, cert, key = rsa_certificates(work)
            self.port = free_port()
            config.append(f'listener "tcp" {{\n  address = "127.0.0.1:{self.port}"\n'
                          f'  tls_cert_file = "{cert}"\n  tls_key_file = "{key}"\n}}\n')
        self.addr = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.audit_log = None
        if audit:
            # OpenBao takes audit devices only from its config file.
            self.audit_log = os.path.join(work, "audit.log")
            config.append(f'audit "file" "log" {{\n  options = {{\n    file_path = "{self.audit_log}"\n  }}\n}}\n'
                          # Prometheus metrics: rate-limit violations (429s are not audited).
                          'telemetry {\n  prometheus_retention_time = "1h"\n  disable_hostname = true\n}\n')
        if config:
            with open(os.path.join(work, "server.hcl"), "w") as f:
                f.write("".join(config))
            argv.append(f"-config={os.path.join(work, 'server.hcl')}")
        self.log = open(os.path.join(work, "server.log"), "w")
        self.server = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)
        self.root_env = dict(os.environ, VAULT_ADDR=admin, VAULT_TOKEN="root")
        if tls == "ecdsa":
            self.root_env["VAULT_CACERT"] = self.ca_cert
        for _ in range(200):
            if subprocess.run([self.bao, "status"], env=self.root_env, capture_output=True).returncode == 0:
                break
            time.sleep(0.05)
        else:
            raise SystemExit(f"OpenBao did not start: {open(self.log.name).read()[-2000:]}")
        for path, data in paths.items():
            self.write_kv(path, data)
        policy = 'path "secret/data/*" { capabilities = ["read"] }\n' \
                 'path "auth/token/renew-self" { capabilities = ["update"] }\n'
        subprocess.run([self.bao, "policy", "write", "bench", "-"], input=policy, text=True,
                       env=self.root_env, check=True, capture_output=True)
        self.cli("auth", "enable", "approle")
        self.cli("write", "auth/approle/role/bench", "token_policies=bench", f"token_ttl={token_ttl}",
                 "token_max_ttl=24h", "secret_id_num_uses=0")
        self.role_id = self.cli("read", "-field=role_id", "auth/approle/role/bench/role-id")
        self.secret_id = self.cli("write", "-f", "-field=secret_id", "auth/approle/role/bench/secret-id")
        for name, value in (("role_id", self.role_id), ("secret_id", self.secret_id)):
            with open(os.path.join(work, name), "w") as f:
                f.write(value)

    def add_role(self, name, token_ttl):
        """Another AppRole role; returns the VINIT_* variables that log in with it."""
        self.cli("write", f"auth/approle/role/{name}", "token_policies=bench", f"token_ttl={token_ttl}",
                 "token_max_ttl=24h")
        files = {}
        for field, write in (("role_id", ["read", "-field=role_id", f"auth/approle/role/{name}/role-id"]),
                             ("secret_id", ["write", "-f", "-field=secret_id",
                                            f"auth/approle/role/{name}/secret-id"])):
            files[field] = os.path.join(self.work, f"{name}.{field}")
            with open(files[field], "w") as f:
                f.write(self.cli(*write))
        return {"VINIT_ROLE_ID_FILE": files["role_id"], "VINIT_SECRET_ID_FILE": files["secret_id"]}

    def cli(self, *args):
        return run_quiet([self.bao, *args], env=self.root_env)

    def write_kv(self, api_path, data):
        """Writes {key: value} at a KV v2 API path such as secret/data/bench/p1."""
        path = api_path.replace("/data/", "/", 1)
        self.cli("kv", "put", path, *(f"{k}={v}" for k, v in data.items()))

    def vinit_env(self, refs, **extra):
        """vinit's environment: AppRole from files, `refs` {NAME: vault:...}."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_", "VINIT_"))}
        env.update(VAULT_ADDR=self.addr, VINIT_AUTH_METHOD="approle",
                   VINIT_ROLE_ID_FILE=os.path.join(self.work, "role_id"),
                   VINIT_SECRET_ID_FILE=os.path.join(self.work, "secret_id"))
        env.update(refs)
        env.update(extra)
        if self.ca_cert:
            env["VAULT_CACERT"] = self.ca_cert
        return env

    def rate_limit_violations(self, quota):
        """429s a rate-limit quota has answered (from OpenBao's Prometheus metrics; read it
        after deleting the quota, or the metrics request itself may be refused)."""
        import urllib.request
        request = urllib.request.Request(f"{self.addr}/v1/sys/metrics?format=prometheus",
                                         headers={"X-Vault-Token": "root"})
        with urllib.request.urlopen(request) as answer:
            for line in answer.read().decode().splitlines():
                if line.startswith("vault_quota_rate_limit_violation{") and f'name="{quota}"' in line:
                    return int(float(line.split()[-1]))
        return 0

    def pid(self):
        return self.server.pid

    def audit_entries(self):
        """(requests, responses) in the audit log so far, by path, without the root token's."""
        counts = {}
        if not self.audit_log or not os.path.exists(self.audit_log):
            return counts
        with open(self.audit_log) as f:
            for line in f:
                entry = json.loads(line)
                if entry.get("type") != "response":
                    continue
                path = entry.get("request", {}).get("path", "?")
                status = "error" if entry.get("error") else "ok"
                counts[(path, status)] = counts.get((path, status), 0) + 1
        return counts

    def stop(self):
        self.server.kill()
        self.server.wait()
        self.log.close()
