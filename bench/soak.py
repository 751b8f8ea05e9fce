"""Soak benchmark: mail and alert load together against `gateway run`, for minutes.

    .venv/bin/python bench/soak.py [--minutes 10] [--mail-rate 10] [--alert-rate 5]

Starts the real daemon (SQLite in a temporary folder, default config and rules), then runs at
a steady, paced rate (open loop, so a slow daemon shows as latency, not as a lower offered
load): SMTP clients each holding a connection and sending distinct ~2 KB messages (each a new
ticket), and HTTP clients posting Alertmanager batches of 10 alerts drawn from a pool of 500
fingerprints (mostly repeats, some recoveries and re-fires: the alert storm shape). Every
`--interval` seconds it prints throughput, p50/p99 latency of each kind, and the daemon's RSS;
at the end the RSS trend after warm-up (least squares, MB per minute) and the whole-run figures.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import random
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path

from ports import free_port, wait_port  # bench/ is on sys.path when run as a script

TOKEN = "soak-token-0123456789"


@dataclass
class Window:
    """What the clients saw since the last sample."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    mail: list[float] = field(default_factory=list)
    alerts: list[float] = field(default_factory=list)  # per batch
    alert_count: int = 0
    errors: int = 0

    def take(self) -> tuple[list[float], list[float], int, int]:
        with self.lock:
            out = (self.mail, self.alerts, self.alert_count, self.errors)
            self.mail, self.alerts, self.alert_count, self.errors = [], [], 0, 0
        return out


def message(i: int, run: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"user{i % 50}@example.com"
    msg["To"] = "support@example.com"
    msg["Subject"] = f"[soak] 服务器宕机 host-{i}" if i % 2 else f"[soak] VPN issue {i}"
    msg["Message-ID"] = f"<soak-{run}-{i}@example.com>"
    msg.set_content("数据库连接超时，请尽快处理。The app cannot reach the database.\n" * 20)
    return msg.as_bytes(policy=SMTP_POLICY)


def alert_batch(rng: random.Random) -> bytes:
    alerts = []
    for _ in range(10):
        n = rng.randrange(500)
        status = "resolved" if rng.random() < 0.1 else "firing"
        alerts.append(
            {
                "status": status,
                "labels": {
                    "alertname": "HighCPU" if n % 3 else "DiskFull",
                    "severity": "critical" if n % 5 == 0 else "warning",
                    "instance": f"node-{n}:9100",
                },
                "annotations": {"summary": f"soak alert {n}"},
                "startsAt": "2026-11-25T08:00:00Z",
                "endsAt": "2026-11-25T09:00:00Z"
                if status == "resolved"
                else "0001-01-01T00:00:00Z",
                "fingerprint": f"soak-{n:04d}",
            }
        )
    return json.dumps({"version": "4", "status": "firing", "alerts": alerts}).encode()


def paced(rate: float, stop: threading.Event):
    """Yield at `rate` per second until `stop`; open loop: late ticks are not skipped."""
    interval = 1.0 / rate
    next_at = time.perf_counter()
    while not stop.is_set():
        delay = next_at - time.perf_counter()
        if delay > 0:
            stop.wait(delay)
        yield next_at
        next_at += interval


def mail_client(
    port: int, rate: float, next_id, run: str, window: Window, stop: threading.Event
) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=120) as client:
        client.ehlo("soak")
        for scheduled in paced(rate, stop):
            i = next_id()
            try:
                client.sendmail(
                    f"user{i % 50}@example.com", ["support@example.com"], message(i, run)
                )
                ok = True
            except smtplib.SMTPException:
                ok = False
            # Latency from when the message was due: queueing behind a slow reply counts.
            latency = time.perf_counter() - scheduled
            with window.lock:
                if ok:
                    window.mail.append(latency)
                else:
                    window.errors += 1


def alert_client(port: int, rate: float, seed: int, window: Window, stop: threading.Event):
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    for scheduled in paced(rate, stop):
        conn.request("POST", "/webhooks/alertmanager", alert_batch(rng), headers)
        response = conn.getresponse()
        response.read()
        latency = time.perf_counter() - scheduled
        with window.lock:
            if response.status == 200:
                window.alerts.append(latency)
                window.alert_count += 10
            else:
                window.errors += 1


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def p(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] * 1000 if values else float("nan")
    return statistics.quantiles(values, n=100)[q - 1] * 1000


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (minutes, MB): MB per minute."""
    if len(points) < 2:
        return float("nan")
    xs, ys = zip(*points, strict=True)
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in points) / var if var else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--mail-rate", type=float, default=10, help="messages/s, all clients")
    parser.add_argument("--alert-rate", type=float, default=5, help="batches of 10 alerts/s")
    parser.add_argument("--mail-clients", type=int, default=4)
    parser.add_argument("--alert-clients", type=int, default=2)
    parser.add_argument("--interval", type=float, default=15, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=1, help="minutes before the RSS trend")
    args = parser.parse_args()
    run = str(int(time.time()))

    with tempfile.TemporaryDirectory() as folder:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        subprocess.run(
            [sys.executable, "-m", "gateway.cli", "init", "--dir", folder],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        smtp_port, http_port = free_port(), free_port()
        env.update(
            GATEWAY_SMTP__PORT=str(smtp_port),
            GATEWAY_HTTP__PORT=str(http_port),
            GATEWAY_WEBHOOKS__ALERTMANAGER__TOKEN=TOKEN,
            GATEWAY_DAEMON__LOG_LEVEL="WARNING",
        )
        log = open(Path(folder) / "daemon.log", "w")  # noqa: SIM115 - closed below
        daemon = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "run", "--config", f"{folder}/gateway.toml"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_port(smtp_port)
            wait_port(http_port)
            soak(args, daemon.pid, smtp_port, http_port, run)
        finally:
            daemon.terminate()
            daemon.wait(60)
            log.close()


def soak(args: argparse.Namespace, pid: int, smtp_port: int, http_port: int, run: str) -> None:
    window, stop = Window(), threading.Event()
    seq_lock = threading.Lock()
    counter = itertools.count()

    def next_id() -> int:
        # The lock only around next(): a generator holding it across its yield serialised
        # the clients on each other's ticks.
        with seq_lock:
            return next(counter)

    threads = [
        threading.Thread(
            target=mail_client,
            args=(smtp_port, args.mail_rate / args.mail_clients, next_id, run, window, stop),
        )
        for _ in range(args.mail_clients)
    ] + [
        threading.Thread(
            target=alert_client,
            args=(http_port, args.alert_rate / args.alert_clients, i, window, stop),
        )
        for i in range(args.alert_clients)
    ]
    print(
        f"soak: {args.minutes} min, mail {args.mail_rate}/s over {args.mail_clients} "
        f"connections, alerts {args.alert_rate * 10:.0f}/s in batches of 10 over "
        f"{args.alert_clients} connections; daemon pid {pid}, RSS {rss_mb(pid):.1f} MB"
    )
    print(
        "| t (min) | mail/s | mail p50 / p99 (ms) | alerts/s | batch p50 / p99 (ms) "
        "| errors | RSS (MB) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for t in threads:
        t.start()
    start = time.perf_counter()
    end = start + args.minutes * 60
    all_mail: list[float] = []
    all_alerts: list[float] = []
    alerts_total = errors_total = 0
    rss_points: list[tuple[float, float]] = []
    last = start
    try:
        while (now := time.perf_counter()) < end:
            time.sleep(min(args.interval, end - now))
            now = time.perf_counter()
            mail, alerts, alert_count, errors = window.take()
            elapsed, last = now - last, now
            minutes, rss = (now - start) / 60, rss_mb(pid)
            rss_points.append((minutes, rss))
            all_mail += mail
            all_alerts += alerts
            alerts_total += alert_count
            errors_total += errors
            print(
                f"| {minutes:5.2f} | {len(mail) / elapsed:6.1f} | {p(mail, 50):6.1f} / "
                f"{p(mail, 99):7.1f} | {alert_count / elapsed:7.1f} | {p(alerts, 50):6.1f} / "
                f"{p(alerts, 99):7.1f} | {errors} | {rss:6.1f} |",
                flush=True,
            )
    finally:
        stop.set()
        for t in threads:
            t.join(150)
    total = time.perf_counter() - start
    after = [(m, r) for m, r in rss_points if m >= args.warmup]
    print()
    print(
        f"whole run: {len(all_mail)} mails ({len(all_mail) / total:.1f}/s, p50 "
        f"{p(all_mail, 50):.1f} ms, p99 {p(all_mail, 99):.1f} ms), {alerts_total} alerts "
        f"({alerts_total / total:.1f}/s, batch p50 {p(all_alerts, 50):.1f} ms, p99 "
        f"{p(all_alerts, 99):.1f} ms), {errors_total} errors"
    )
    if after:
        print(
            f"RSS after {args.warmup:g} min warm-up: {after[0][1]:.1f} MB -> {after[-1][1]:.1f} "
            f"MB (min {min(r for _, r in after):.1f}, max {max(r for _, r in after):.1f}), "
            f"trend {slope(after):+.2f} MB/min"
        )


if __name__ == "__main__":
    main()
