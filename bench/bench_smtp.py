"""SMTP intake benchmark: the real daemon against a no-op aiosmtpd server, in one run.

    .venv/bin/python bench/bench_smtp.py [--messages 2000] [--connections 8] [--processes 1]

Both servers run as separate processes on loopback; the same client (C threads, each with its
own persistent SMTP connection, smtplib) sends N distinct messages to each and reports
messages/second and per-message latency (MAIL FROM to the reply to DATA). The gateway answers
250 only after commit, so its figure includes parsing, classification and the SQLite write.
With `--processes N` the gateway row is N `gateway run` sharing the SMTP port
(`[smtp] reuse_port`) and the SQLite file (README "Several processes").
"""

from __future__ import annotations

import argparse
import os
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path

from ports import free_port, wait_port  # bench/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
GATEWAY_RUN = [sys.executable, "-m", "gateway.cli", "run"]

NOOP_SERVER = """
import asyncio, sys
from aiosmtpd.smtp import SMTP

class Handler:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"

async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(Handler(), hostname="noop"), "127.0.0.1",
                                      int(sys.argv[1]))
    async with server:
        await server.serve_forever()

asyncio.run(main())
"""


def message(i: int, run: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"user{i % 50}@example.com"
    msg["To"] = "support@example.com"
    msg["Subject"] = f"[bench] 服务器宕机 host-{i}" if i % 2 else f"[bench] VPN issue {i}"
    msg["Message-ID"] = f"<bench-{run}-{i}@example.com>"
    msg.set_content(
        "数据库连接超时，请尽快处理。The app cannot reach the database.\n" * 20, cte="base64"
    )
    return msg.as_bytes(policy=SMTP_POLICY)


def blast(port: int, n: int, connections: int, run: str) -> tuple[float, list[float]]:
    latencies: list[float] = []
    lock = threading.Lock()
    counter = iter(range(n))
    counter_lock = threading.Lock()
    payloads = [message(i, run) for i in range(n)]

    def worker() -> None:
        mine = []
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
            client.ehlo("bench")
            while True:
                with counter_lock:
                    i = next(counter, None)
                if i is None:
                    break
                t0 = time.perf_counter()
                client.sendmail(f"user{i % 50}@example.com", ["support@example.com"], payloads[i])
                mine.append(time.perf_counter() - t0)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start, latencies


def loop_lag(http_port: int) -> float:
    """The daemon's own measure of how late its event loop ran timers (seconds)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("gateway_event_loop_lag_max_seconds "):
                return float(line.split()[1])
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def report(name: str, elapsed: float, latencies: list[float]) -> float:
    rate = len(latencies) / elapsed
    qs = statistics.quantiles(latencies, n=100)
    print(
        f"{name:<22} {len(latencies):>6} msgs  {rate:8.1f} msg/s  "
        f"p50 {qs[49] * 1000:7.2f} ms  p99 {qs[98] * 1000:7.2f} ms"
    )
    return rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args()
    run = str(int(time.time()))

    noop_port = free_port()
    noop = subprocess.Popen([sys.executable, "-c", NOOP_SERVER, str(noop_port)])
    with tempfile.TemporaryDirectory() as folder:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        subprocess.run(
            [sys.executable, "-m", "gateway.cli", "init", "--dir", folder],
            env=env,
            check=True,
            capture_output=True,
        )
        gw_port = free_port()
        http_ports = [free_port() for _ in range(args.processes)]
        env.update(
            GATEWAY_SMTP__PORT=str(gw_port),
            GATEWAY_SMTP__REUSE_PORT="true" if args.processes > 1 else "false",
            GATEWAY_DAEMON__LOG_LEVEL="WARNING",
        )
        gateways = []
        for http_port in http_ports:
            gateways.append(
                subprocess.Popen(
                    [*GATEWAY_RUN, "--config", f"{folder}/gateway.toml"],
                    env=env | {"GATEWAY_HTTP__PORT": str(http_port)},
                )
            )
            wait_port(http_port)  # one at a time: the first migrates the new database
        try:
            wait_port(noop_port)
            wait_port(gw_port)
            print(
                f"{args.messages} messages over {args.connections} connections, loopback, "
                f"{args.processes} gateway process(es)"
            )
            blast(noop_port, 50, 2, "warm")  # let both processes settle imports and caches
            blast(gw_port, 50, 2, "warm")
            cpu = cpu_seconds(noop.pid)
            noop_rate = report(
                "no-op aiosmtpd", *blast(noop_port, args.messages, args.connections, run)
            )
            noop_cpu = (cpu_seconds(noop.pid) - cpu) / args.messages
            cpu = sum(cpu_seconds(g.pid) for g in gateways)
            gw_rate = report(
                f"gateway (SQLite) x{args.processes}",
                *blast(gw_port, args.messages, args.connections, run),
            )
            gw_cpu = (sum(cpu_seconds(g.pid) for g in gateways) - cpu) / args.messages
            print(f"gateway / no-op = {gw_rate / noop_rate:.2f}")
            print(
                f"server CPU per message: no-op {noop_cpu * 1000:.2f} ms, "
                f"gateway {gw_cpu * 1000:.2f} ms (all its processes)"
            )
            lags = ", ".join(f"{loop_lag(p) * 1000:.1f}" for p in http_ports)
            print(f"gateway event-loop lag during the run: max {lags} ms")
        finally:
            for g in gateways:
                g.terminate()
            noop.terminate()
            for g in gateways:
                g.wait(timeout=30)
            noop.wait(timeout=30)


if __name__ == "__main__":
    main()
