#!/usr/bin/env python3
"""Time to healthy: vinit-mock-vault vs OpenBao's dev server.

Starts each server on a free loopback port and polls GET /v1/sys/health
(a new connection each try, 1 ms apart, so the poller does not take the
CPU from the server starting up) until it answers 200: the time from the
start of the process to that answer, median of RUNS runs. Also prints
the size of each binary and its resident memory once healthy (VmRSS).

Usage: bench/time-to-healthy.py [RUNS]   (default 20; expects the release
build: cargo build --release --workspace --bins)
"""
import http.client
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 20
MOCK = os.path.join(ROOT, "target/x86_64-unknown-linux-musl/release/vinit-mock-vault")
SEED = os.path.join(ROOT, "tools/mock-vault/examples/seed.yaml")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def healthy(port):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        c.request("GET", "/v1/sys/health")
        ok = c.getresponse().status == 200
        c.close()
        return ok
    except OSError:
        return False


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def measure(argv_for_port):
    times, rss = [], 0
    for _ in range(RUNS):
        port = free_port()
        start = time.perf_counter()
        proc = subprocess.Popen(argv_for_port(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while not healthy(port):
            if proc.poll() is not None or time.perf_counter() - start > 30:
                raise SystemExit(f"{argv_for_port(port)[0]} did not become healthy")
            time.sleep(0.001)
        times.append((time.perf_counter() - start) * 1000)
        rss = rss_kib(proc.pid)
        proc.terminate()
        proc.wait()
    return statistics.median(times), min(times), rss


def main():
    bao = subprocess.run([os.path.join(ROOT, "scripts/openbao.sh"), "path"], capture_output=True, text=True,
                         check=True).stdout.strip()
    rows = [
        ("vinit-mock-vault", MOCK, lambda p: [MOCK, "--seed", SEED, "--listen", f"127.0.0.1:{p}"]),
        ("OpenBao 2.7.2 dev", bao,
         lambda p: [bao, "server", "-dev", "-dev-root-token-id=root", f"-dev-listen-address=127.0.0.1:{p}"]),
    ]
    print(f"| server | binary | time to healthy (median of {RUNS}) | fastest | RSS when healthy |")
    print("| --- | --- | --- | --- | --- |")
    for name, binary, argv in rows:
        median, fastest, rss = measure(argv)
        print(f"| {name} | {os.path.getsize(binary):,} B | {median:.1f} ms | {fastest:.1f} ms | {rss:,} KiB |")


if __name__ == "__main__":
    main()
