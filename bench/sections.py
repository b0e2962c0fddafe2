"""The measurements of bench/run, one function per section: plain, signals, secrets, fleet,
steady, redact, size. Each takes (results, args, work directory) and adds rows to results."""
import json
import os
import random
import re
import shutil
import signal
import subprocess
import time
from statistics import median

from benchlib import (FLOOR, INITS, PIDNS, PLAIN_PEER, PROBE, ROOT, VINIT, OpenBao, cpu_seconds, proc_status,
                      rotated, run_quiet, tcp_passive_opens)


def add_with_baseline(results, section, case, baseline, samples, unit):
    """Adds the baseline's row (the command without any init) and each init's, whose detail
    gives the time the init adds over the baseline and that as a ratio to the peer's."""
    base = results.add(section, case, baseline, samples[baseline], unit)["median"]
    peer_added = median(samples[PLAIN_PEER]) - base
    for tool in [name for name in samples if name != baseline]:
        added = median(samples[tool]) - base
        results.add(section, case, tool, samples[tool], unit, peer=PLAIN_PEER,
                    detail=f"adds {added:.3f} {unit}, {added / peer_added:.2f}x what {PLAIN_PEER} adds")


# ---------------------------------------------------------------- plain init
def plain(results, args, work):
    """INIT -- /bin/true (hyperfine) as a plain process and as PID 1; peak RSS; idle wake-ups."""
    os.makedirs(work, exist_ok=True)
    rounds, runs = (3, 20) if args.quick else (10, 50)
    true = shutil.which("true")
    # As PID 1: `unshare --pid --fork` without --mount-proc, whose mount namespace teardown
    # adds milliseconds of noise to every run alike.
    for mode, prefix in (("plain process", []), ("PID 1 (new PID namespace)", PIDNS[:3])):
        commands = {"bare /bin/true": [*prefix, true]}
        commands.update({tool: [*prefix, *init, true] for tool, init in INITS.items()})
        samples = {name: [] for name in commands}
        names = list(commands)
        for round_number in range(rounds):
            order = rotated(names, round_number)
            export = os.path.join(work, "hyperfine.json")
            argv = ["hyperfine", "--shell=none", "--warmup", "5", "--runs", str(runs), "--export-json", export,
                    "--style", "none"]
            for name in order:
                argv += ["-n", name, " ".join(commands[name])]
            run_quiet(argv)
            for result in json.load(open(export))["results"]:
                samples[result["command"]] += [t * 1000 for t in result["times"]]
        add_with_baseline(results, "plain", f"INIT -- /bin/true, {mode}", "bare /bin/true", samples, "ms")

    # Peak RSS and idle wake-ups: every init supervising an idle app at the same time.
    idle = 3.0 if args.quick else 10.0
    reps = 1 if args.quick else 3
    hwm = {tool: [] for tool in INITS}
    wakeups = {tool: [] for tool in INITS}
    for _ in range(reps):
        procs = {tool: subprocess.Popen([*init, "sleep", str(idle + 2)]) for tool, init in INITS.items()}
        time.sleep(1.0)
        before = {tool: proc_status(p.pid)["switches"] for tool, p in procs.items()}
        time.sleep(idle)
        for tool, p in procs.items():
            status = proc_status(p.pid)
            hwm[tool].append(int(status["VmHWM"].split()[0]))
            wakeups[tool].append(sum(status["switches"]) - sum(before[tool]))
        for p in procs.values():
            p.wait()
    for tool in INITS:
        results.add("plain", "peak RSS (VmHWM) supervising an idle app", tool, hwm[tool], "KiB", peer=PLAIN_PEER)
    for tool in INITS:
        results.add("plain", f"context switches while idle for {idle:.0f} s", tool, wakeups[tool], "",
                    peer=PLAIN_PEER)


# ---------------------------------------------------------------- signals and reaping
def signal_latencies(argv, count, env=None, started=None):
    """Starts argv (ending in the probe's sigstamp step), sends SIGUSR1 `count` times to the
    process it started, and returns the microseconds from each kill() to the probe's wake-up.
    `started`, a list, gets the pid of the process started."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
    if started is not None:
        started.append(proc.pid)
    try:
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit(f"{argv}: probe did not start")
        time.sleep(0.05)
        latencies = []
        for _ in range(count):
            time.sleep(0.002 + random.random() * 0.002)
            start = time.monotonic_ns()
            os.kill(proc.pid, signal.SIGUSR1)
            latencies.append((int(proc.stdout.readline()) - start) / 1000)
        return latencies
    finally:
        proc.wait(timeout=10)


def init_reactions(trace, inits):
    """From `perf script` lines of signal:signal_generate events: for each init pid in `inits`,
    the microseconds between a SIGUSR1 generated for it and the SIGUSR1 it generates for its
    child (its own reaction, without either wake-up of the child)."""
    pattern = re.compile(r"^\s*\S+\s+(\d+)/\d+\s+\[\d+\]\s+([\d.]+):\s+signal:signal_generate:\s+sig=10\b.*\bpid=(\d+)")
    pending, reactions = {}, {pid: [] for pid in inits}
    for line in trace.splitlines():
        match = pattern.match(line)
        if not match:
            continue
        sender, at, target = int(match.group(1)), float(match.group(2)), int(match.group(3))
        if target in reactions and sender != target:
            pending[target] = at
        elif sender in reactions and sender != target and sender in pending:
            reactions[sender].append((at - pending.pop(sender)) * 1e6)
    return reactions


def signals(results, args, work):
    """Added latency of kill(init) -> the child's handler; the init's own reaction (kernel
    tracepoints); reaping 2,000 orphans at once."""
    rounds, per_run = (3, 30) if args.quick else (30, 50)
    # vinit without Vault and --redact blocks in sigtimedwait; with either it runs an event loop
    # and a signal thread forwards: measured with one secret (OpenBao) and with --redact.
    data, refs = secret_layout(1, 1)
    bao = OpenBao(os.path.join(work, "openbao-signals"), data)
    with_secret = bao.vinit_env(refs)
    prefixes = {tool: (argv, None) for tool, argv in INITS.items()}
    prefixes["vinit, app with a secret (event loop)"] = ([VINIT, "--"], with_secret)
    prefixes["vinit, --redact (event loop, output pump)"] = ([VINIT, "--redact", "--"], None)
    tools = ["signalled directly", *prefixes]
    samples = {tool: [] for tool in tools}
    reactions = {tool: [] for tool in prefixes}
    try:
        for round_number in range(rounds):
            for tool in rotated(tools, round_number):
                prefix, env = prefixes.get(tool, ([], None))
                samples[tool] += signal_latencies([*prefix, PROBE, f"sigstamp={per_run}"], per_run, env)
        # A second pass under `perf record`: the kernel's timestamps of the signal to the init and
        # of the init's signal to the child. Their difference leaves out the child's wake-up,
        # which dominates the spread of the first pass on a VM.
        if shutil.which("perf"):
            trace_file = os.path.join(work, "signals.perf")
            perf = subprocess.Popen(["perf", "record", "-q", "-e", "signal:signal_generate", "-a", "-o", trace_file],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)
            pids = {tool: [] for tool in prefixes}
            for round_number in range(max(1, rounds // 3)):
                for tool in rotated(list(prefixes), round_number):
                    prefix, env = prefixes[tool]
                    signal_latencies([*prefix, PROBE, f"sigstamp={per_run}"], per_run, env, pids[tool])
            perf.send_signal(signal.SIGINT)
            perf.wait(timeout=60)
            trace = subprocess.run(["perf", "script", "-i", trace_file, "-F", "comm,pid,tid,cpu,time,event,trace",
                                    "--ns"], capture_output=True, text=True, check=True).stdout
            found = init_reactions(trace, [pid for group in pids.values() for pid in group])
            for tool, group in pids.items():
                reactions[tool] = [r for pid in group for r in found[pid]]
        else:
            results.note("signals", "skipped the init's own reaction: `perf` is not installed")
    finally:
        bao.stop()
    add_with_baseline(results, "signals", "SIGUSR1: kill() to the child's sigwaitinfo()", "signalled directly",
                      samples, "us")
    if any(reactions.values()):
        for tool, values in reactions.items():
            results.add("signals", "SIGUSR1: the init's own reaction (kernel: signal to the init -> its signal to "
                        "the child)", tool, values, "us", peer=PLAIN_PEER)

    orphans = 2000
    reap_rounds = 2 if args.quick else 5
    reaped = {tool: [] for tool in INITS}
    for round_number in range(reap_rounds):
        for tool in rotated(list(INITS), round_number):
            # As PID 1: dumb-init reaps only there, and every init's orphans come to it.
            out = run_quiet([*PIDNS, *INITS[tool], PROBE, f"burst={orphans}"])
            reaped[tool].append(int(out.splitlines()[-1]) / 1e6)
    for tool in INITS:
        results.add("signals", f"reaping {orphans:,} orphans exiting at once (as PID 1)", tool, reaped[tool], "ms",
                    peer=PLAIN_PEER)


# ---------------------------------------------------------------- start with secrets
def secret_layout(refs, paths):
    """{api path: {key: value}} and {VAR: reference} for `refs` references over `paths` paths."""
    data = {f"secret/data/bench/p{p}": {} for p in range(paths)}
    env = {}
    for r in range(refs):
        path = f"secret/data/bench/p{r % paths}"
        key = f"k{r // paths}"
        data[path][key] = f"value-{r}-{path[-3:]}"
        env[f"SECRET_{r}"] = f"vault:{path}#{key}"
    return data, env


def agent_config(bao, work, refs, command):
    templates = "".join(
        f'env_template "{name}" {{\n  contents = "{{{{ with secret \\"{ref[6:].split("#")[0]}\\" }}}}'
        f'{{{{ .Data.data.{ref.split("#")[1]} }}}}{{{{ end }}}}"\n  error_on_missing_key = true\n}}\n'
        for name, ref in refs.items())
    path = os.path.join(work, f"agent-{len(refs)}.hcl")
    command_hcl = ", ".join(json.dumps(c) for c in command)
    with open(path, "w") as f:
        f.write(f'''
vault {{ address = "{bao.addr}" }}
auto_auth {{
  method "approle" {{
    config = {{
      role_id_file_path = "{bao.work}/role_id"
      secret_id_file_path = "{bao.work}/secret_id"
      remove_secret_id_file_after_reading = false
    }}
  }}
}}
template_config {{ exit_on_retry_failure = true }}
{templates}
exec {{
  command = [{command_hcl}]
  restart_on_secret_changes = "never"
}}
''')
    return path


def stamped_start(argv, env, stamp, timeout=60):
    """Runs argv, whose app writes CLOCK_MONOTONIC to `stamp` first; returns ms from the
    start of argv to the app's first step."""
    if os.path.exists(stamp):
        os.remove(stamp)
    start = time.monotonic_ns()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0 or not os.path.exists(stamp):
        raise SystemExit(f"{argv[0]} failed ({done.returncode}): {done.stderr[-3000:]}")
    return (int(open(stamp).read()) - start) / 1e6


AGENT_EXEC_WAIT_MS = 2000.0
FLOOR_NAME = "minimal client: login + parallel reads + exec"


def secrets(results, args, work):
    """Exec to the app's first step with 1, 10, 100 references over 1, 5, 50 paths."""
    layouts = [(1, 1), (10, 5), (100, 50)]
    all_paths = {}
    for refs, paths in layouts:
        for path, data in secret_layout(refs, paths)[0].items():
            all_paths.setdefault(path, {}).update(data)
    bao = OpenBao(os.path.join(work, "openbao"), all_paths)
    runs = 3 if args.quick else 20
    stamp = os.path.join(work, "stamp")
    agent_env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_", "VINIT_"))}
    try:
        for refs, paths in layouts:
            _, env = secret_layout(refs, paths)
            case = f"{refs} reference{'s' if refs > 1 else ''} over {paths} path{'s' if paths > 1 else ''}"
            app = [PROBE, f"stamp={stamp}"]
            paths_read = sorted({ref[6:].split("#")[0] for ref in env.values()})
            config = agent_config(bao, work, env, app)
            floor = [FLOOR, bao.addr, f"{bao.work}/role_id", f"{bao.work}/secret_id", *paths_read, "--", *app]
            tools = {
                "app alone (exec floor)": lambda: stamped_start(app, agent_env, stamp),
                FLOOR_NAME: lambda: stamped_start(floor, agent_env, stamp),
                "vinit": lambda: stamped_start([VINIT, "--", *app], bao.vinit_env(env), stamp),
                "OpenBao Agent exec": lambda: stamped_start([bao.bao, "agent", f"-config={config}"], agent_env,
                                                            stamp),
            }
            samples = {name: [] for name in tools}
            for name in tools:
                tools[name]()  # warm-up: page cache, OpenBao's first login
            # vinit's own share is a fraction of a millisecond: five samples a round for all
            # but the Agent (2 s a start), so its median rests on 100 starts.
            for round_number in range(runs):
                for name in rotated(list(tools), round_number):
                    for _ in range(1 if name.startswith("OpenBao") else 5):
                        samples[name].append(tools[name]())
            # vinit against the floor; the Agent against vinit.
            peers = {"vinit": FLOOR_NAME, "OpenBao Agent exec": "vinit"}
            for name, sample in samples.items():
                results.add("secrets", case, name, sample, "ms", peer=peers.get(name))
            # The Agent's exec server waits a fixed 2 s after rendering before it spawns the
            # child (its log: "detected a change in the environment variables: restarting the
            # child process", then "spawning" 2.00 s later): its time without that wait.
            results.add("secrets", case, "OpenBao Agent exec without its 2 s wait",
                        [t - AGENT_EXEC_WAIT_MS for t in samples["OpenBao Agent exec"]], "ms", peer="vinit")
            floor_median = median(samples[FLOOR_NAME])
            results.add("secrets", f"vinit's own share: {case}", "vinit minus the minimal client",
                        [t - floor_median for t in samples["vinit"]], "ms")
    finally:
        bao.stop()


# ---------------------------------------------------------------- fleet
FLEET_REFS, FLEET_PATHS = 10, 5


def release_fleet(bao, count, env, work, timeout):
    """Forks `count` children that wait on one pipe, then exec vinit (the app: the probe,
    stamping and reporting its environment); closes the pipe so all start at once.
    Returns (ms from release to each app start, failures, exit codes, wall seconds)."""
    os.makedirs(work, exist_ok=True)
    gate_read, gate_write = os.pipe()
    children = {}
    for i in range(count):
        pid = os.fork()
        if pid == 0:
            try:
                os.close(gate_write)
                err = os.open(os.path.join(work, f"{i}.err"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.dup2(err, 2)
                os.read(gate_read, 1)
                os.execve(VINIT, [VINIT, "--", PROBE, f"stamp={work}/{i}.stamp", f"report={work}/{i}.report"],
                          env)
            finally:
                os._exit(127)
        children[pid] = i
    os.close(gate_read)
    time.sleep(0.5)  # every child is blocked on the gate
    start = time.monotonic_ns()
    os.close(gate_write)
    codes = {}
    deadline = time.monotonic() + timeout
    while children and time.monotonic() < deadline:
        pid, status = os.waitpid(-1, 0)
        if pid in children:
            codes[children.pop(pid)] = os.waitstatus_to_exitcode(status)
    wall = (time.monotonic_ns() - start) / 1e9
    for pid in children:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    expected = {name: ref for name, ref in env.items() if name.startswith("SECRET_")}
    times, failures = [], []
    for i in range(count):
        try:
            stamp = int(open(f"{work}/{i}.stamp").read())
            got = {}
            for line in open(f"{work}/{i}.report"):
                if line.startswith("env="):
                    name, _, value = bytes.fromhex(line[4:].strip()).decode().partition("=")
                    got[name] = value
            wrong = [n for n in expected if got.get(n) != fleet_value(expected[n])]
            if codes.get(i) != 0 or wrong:
                failures.append(f"#{i}: exit {codes.get(i)}, wrong {wrong[:3]}")
            else:
                times.append((stamp - start) / 1e6)
        except (FileNotFoundError, ValueError):
            err = open(f"{work}/{i}.err").read().strip()[-300:]
            failures.append(f"#{i}: exit {codes.get(i)}, no start ({err})")
    shutil.rmtree(work, ignore_errors=True)
    return times, failures, wall


def fleet_value(ref):
    path, key = ref[6:].split("#")
    p = int(path.rsplit("p", 1)[1])
    r = int(key[1:]) * FLEET_PATHS + p
    return f"value-{r}-{path[-3:]}"


def fleet(results, args, work):
    """N vinit instances released at once against one OpenBao: plain HTTP, HTTP with a
    rate-limit quota (429), TLS."""
    data, env = secret_layout(FLEET_REFS, FLEET_PATHS)
    rate = 100
    variants = [("HTTP", {}), (f"HTTP, rate-limit quota {rate}/s (429)", {"quota": rate}),
                ("TLS", {"tls": "ecdsa"})]
    for variant, options in variants:
        bao = OpenBao(os.path.join(work, variant.split(",")[0].lower()), data, tls=options.get("tls", False),
                      audit=True)
        try:
            # The app exits at once: no revocation at exit, so what is counted is the start.
            instance_env = bao.vinit_env(env, VINIT_TIMEOUT="60s", VINIT_REVOKE="false")
            for count in args.fleet:
                audit_before = bao.audit_entries()
                opens_before = tcp_passive_opens()
                cpu_before = cpu_seconds(bao.pid())
                quota = f"bench{count}"
                if "quota" in options:
                    bao.cli("write", f"sys/quotas/rate-limit/{quota}", f"rate={options['quota']}", "interval=1s")
                times, failures, wall = release_fleet(bao, count, instance_env, os.path.join(work, "fleet"), 120)
                time.sleep(0.3)  # the audit device has written the last entries
                refused = ""
                if "quota" in options:
                    bao.cli("delete", f"sys/quotas/rate-limit/{quota}")
                    refused = f"{bao.rate_limit_violations(quota) / count:.2f} answered 429, "
                audit_after = bao.audit_entries()
                new = {key: audit_after[key] - audit_before.get(key, 0) for key in audit_after}
                # Revocation at exit (running life: the app here exits at once) is not start-up.
                revokes = sum(v for (path, _), v in new.items() if path.startswith(("auth/token/revoke",
                                                                                    "sys/leases/revoke")))
                requests = sum(new.values()) - revokes
                errors = sum(v for (path, status), v in audit_after.items() if status == "error") - \
                    sum(v for (path, status), v in audit_before.items() if status == "error")
                connections = tcp_passive_opens() - opens_before
                server_cpu = (cpu_seconds(bao.pid()) - cpu_before) * 1000
                detail = (f"{len(times)}/{count} started with the right values; per instance: "
                          f"{refused}{requests / count:.2f} Vault requests in the audit log ({errors / count:.2f} errors; "
                          f"floor {1 + FLEET_PATHS}) and {revokes / count:.2f} revocations at exit, "
                          f"{connections / count:.2f} "
                          f"{'TLS handshakes' if options.get('tls') else 'TCP connections'}, "
                          f"{server_cpu / count:.2f} ms OpenBao CPU; last start {wall:.1f} s after release")
                row = results.add("fleet", f"time to app start, N={count}", variant, times, "ms", detail=detail)
                row.update(detail_n=count, requests_per_instance=requests / count,
                           connections_per_instance=connections / count, server_cpu_ms_per_instance=server_cpu / count,
                           failures=len(failures))
                for failure in failures[:5]:
                    results.note("fleet", f"{variant}, N={count}: {failure}")
        finally:
            bao.stop()


# ---------------------------------------------------------------- steady state
def steady(results, args, work):
    """RSS, CPU and wake-ups of vinit supervising an idle app for args.steady seconds, with a
    short token TTL (renewals every few seconds once running life lands) and a long one."""
    data, env = secret_layout(FLEET_REFS, FLEET_PATHS)
    bao = OpenBao(os.path.join(work, "openbao"), data, audit=True, token_ttl="9s")
    instances = {}
    try:
        long_ttl = bao.add_role("longttl", "24h")
        duration = args.steady
        instances.update({
            "vinit, token TTL 9 s": subprocess.Popen([VINIT, "--", "sleep", str(duration + 30)],
                                                     env=bao.vinit_env(env)),
            "vinit, token TTL 24 h": subprocess.Popen([VINIT, "--", "sleep", str(duration + 30)],
                                                      env=bao.vinit_env(env, **long_ttl)),
            "tini-static (no secrets)": subprocess.Popen([*INITS["tini-static"], "sleep", str(duration + 30)]),
        })
        time.sleep(2.0)
        audit_before = bao.audit_entries()
        first = {name: (cpu_seconds(p.pid), sum(proc_status(p.pid)["switches"])) for name, p in instances.items()}
        rss = {name: [] for name in instances}
        end = time.monotonic() + duration
        while time.monotonic() < end:
            for name, p in instances.items():
                status = proc_status(p.pid)
                if status is None:
                    raise SystemExit(f"{name} exited during the steady-state run")
                rss[name].append(int(status["VmRSS"].split()[0]))
            time.sleep(min(1.0, max(0.0, end - time.monotonic())))
        audit_after = bao.audit_entries()
        renewals = {path: audit_after.get((path, "ok"), 0) - audit_before.get((path, "ok"), 0)
                    for path in ("auth/token/renew-self", "auth/approle/login")}
        for name, p in instances.items():
            status = proc_status(p.pid)
            cpu = (cpu_seconds(p.pid) - first[name][0]) * 1000
            switches = sum(status["switches"]) - first[name][1]
            hwm = int(status["VmHWM"].split()[0])
            results.add("steady", f"RSS over {duration:.0f} s supervising an idle app", name, rss[name], "KiB",
                        detail=f"peak (VmHWM) {hwm:,} KiB; CPU {cpu:.0f} ms ({cpu / duration / 10:.3f} %); "
                               f"{switches / duration * 60:.1f} wake-ups/min; {status['threads']} threads")
        results.note("steady", f"OpenBao saw {renewals['auth/token/renew-self']} token renewals and "
                               f"{renewals['auth/approle/login']} logins during the {duration:.0f} s (both vinit "
                               "instances together); 0 means this vinit has no running life yet")
    finally:
        for p in instances.values():
            p.kill()
            p.wait()
        bao.stop()


# ---------------------------------------------------------------- --redact
def redact(results, args, work):
    help_text = subprocess.run([VINIT, "--help"], capture_output=True, text=True)
    script = os.path.join(ROOT, "bench", "redact.sh")
    if "--redact" not in help_text.stdout + help_text.stderr:
        results.note("redact", "skipped: `vinit --help` does not list --redact in this binary")
        return
    if not os.path.exists(script):
        results.note("redact", "skipped: bench/redact.sh (the redaction benchmark) is not in this tree")
        return
    out = subprocess.run([script], capture_output=True, text=True, env=dict(os.environ, VINIT=VINIT))
    for line in (out.stdout + (out.stderr if out.returncode else "")).strip().splitlines():
        results.note("redact", f"`{line.strip()}`")


# ---------------------------------------------------------------- size
def size(results, args, work):
    bao = run_quiet([os.path.join(ROOT, "scripts", "openbao.sh"), "path"])
    binaries = {"vinit": VINIT, **{tool: shutil.which(tool) for tool in ("tini-static", "tini", "dumb-init",
                                                                         "catatonit")},
                "OpenBao (bao, whose agent is the secrets peer)": bao}
    for tool, path in binaries.items():
        kind = run_quiet(["file", "-b", "-L", path]).split(",")
        linkage = "static" if any("static" in k for k in kind) else "dynamic"
        results.add("size", "binary size", tool, [os.path.getsize(os.path.realpath(path))], "B",
                    peer=PLAIN_PEER, detail=linkage)
    if not shutil.which("cargo-bloat"):
        results.note("size", "cargo-bloat is not installed: vinit's largest parts not listed")
        return
    # cargo bloat needs symbols: an unstripped build in its own target directory.
    bloat = subprocess.run(["cargo", "bloat", "--release", "--bin", "vinit", "--crates", "-n", "15",
                            "--message-format", "json", "--target-dir", os.path.join(ROOT, "target", "bloat")],
                           cwd=ROOT, capture_output=True, text=True,
                           env=dict(os.environ, CARGO_PROFILE_RELEASE_STRIP="false"))
    if bloat.returncode != 0:
        results.note("size", f"cargo bloat failed: {bloat.stderr.strip()[-500:]}")
        return
    report = json.loads(bloat.stdout.strip().splitlines()[-1])
    text = report["text-section-size"]
    for crate in report["crates"]:
        results.add("size", f"vinit's largest crates (.text {text:,} B, cargo bloat)", crate["name"],
                    [crate["size"]], "B", detail=f"{crate['size'] / text * 100:.1f} % of .text")


# ---------------------------------------------------------------- TLS: handshakes per start
def tls(results, args, work):
    """What a start costs a TLS Vault under three connection strategies (login + 5 reads):
    vinit's today (reads in parallel, one fresh connection each beside the login's), the same
    with the 4 extra connections resuming the login's TLS 1.3 session, and one connection for
    everything (the handshake count HTTP/2 would give). Measured with Python's ssl client:
    OpenBao's CPU per start, TLS handshakes per start (TCP accepts), client time per start;
    and vinit itself against the same server. Once with OpenBao's dev certificate (ECDSA P-256),
    once with an RSA-2048 one, whose signature makes a full handshake dearer."""

    for key in ("ecdsa", "rsa"):
        tls_strategies(results, args, os.path.join(work, key), key)


def tls_strategies(results, args, work, key):
    import http.client
    import socket
    import ssl
    from concurrent.futures import ThreadPoolExecutor

    data, env = secret_layout(FLEET_REFS, FLEET_PATHS)
    paths = sorted({ref[6:].split("#")[0] for ref in env.values()})
    bao = OpenBao(work, data, tls=key)
    context = ssl.create_default_context(cafile=bao.ca_cert)
    pool = ThreadPoolExecutor(max_workers=len(paths))
    resumed = []

    def connect(session=None):
        conn = http.client.HTTPSConnection("127.0.0.1", bao.port, context=context)
        if session is None:
            conn.connect()
        else:
            raw = socket.create_connection(("127.0.0.1", bao.port))
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as http.client does
            conn.sock = context.wrap_socket(raw, server_hostname="127.0.0.1", session=session)
            resumed.append(conn.sock.session_reused)
        return conn

    def get(conn, path, token):
        conn.request("GET", f"/v1/{path}", headers={"X-Vault-Token": token})
        body = conn.getresponse().read()
        if b'"data"' not in body:
            raise SystemExit(f"TLS strategy read {path}: {body[:200]}")

    def login(conn):
        conn.request("POST", "/v1/auth/approle/login",
                     json.dumps({"role_id": bao.role_id, "secret_id": bao.secret_id}))
        return json.loads(conn.getresponse().read())["auth"]["client_token"]

    def parallel(resume):
        first = connect()
        token = login(first)
        session = first.sock.session if resume else None

        def read_on_new(path):
            conn = connect(session)
            get(conn, path, token)
            conn.close()
        futures = [pool.submit(read_on_new, p) for p in paths[1:]]
        get(first, paths[0], token)
        for f in futures:
            f.result()
        first.close()

    def one_connection():
        conn = connect()
        token = login(conn)
        for path in paths:
            get(conn, path, token)
        conn.close()

    stamp = os.path.join(work, "stamp")
    vinit_env = bao.vinit_env(env, VINIT_REVOKE="false")  # the start only, not the exit

    def vinit_start():
        stamped_start([VINIT, "--", PROBE, f"stamp={stamp}"], vinit_env, stamp)

    strategies = {
        "parallel reads, 4 new full handshakes (vinit's strategy before, Python client)": lambda: parallel(False),
        "parallel reads, 4 new connections resuming the login's session": lambda: parallel(True),
        "one connection, reads in sequence (= HTTP/2's 1 handshake)": one_connection,
        "vinit today": vinit_start,
    }
    starts = 60 if args.quick else 300
    try:
        for strategy in strategies.values():
            strategy()  # warm-up
        for name, strategy in strategies.items():
            resumed.clear()
            opens, cpu = tcp_passive_opens(), cpu_seconds(bao.pid())
            times = []
            for _ in range(starts):
                start = time.monotonic_ns()
                strategy()
                times.append((time.monotonic_ns() - start) / 1e6)
            server_cpu = (cpu_seconds(bao.pid()) - cpu) * 1000 / starts
            handshakes = (tcp_passive_opens() - opens) / starts
            detail = f"{handshakes:.2f} TLS handshakes and {server_cpu:.2f} ms OpenBao CPU per start"
            if resumed:
                detail += f"; {sum(resumed) / len(resumed) * 100:.0f} % of the new connections resumed"
            row = results.add("tls", f"login + 5 reads over TLS ({key.upper()} server key), one start at a time",
                              name, times, "ms", detail=detail)
            row.update(handshakes_per_start=handshakes, server_cpu_ms_per_start=server_cpu)
    finally:
        pool.shutdown()
        bao.stop()
