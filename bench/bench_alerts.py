"""Alert intake benchmark: the real daemon against a bare Starlette + SQLite endpoint, one run.

    .venv/bin/python bench/bench_alerts.py [--alerts 20000] [--connections 8]

Both servers are separate processes on loopback (uvicorn). The baseline parses each
Alertmanager batch and inserts every alert into SQLite (WAL, synchronous=FULL) in one
transaction. The same client (C threads, each with one keep-alive http.client connection)
posts batches of 1, 10 and 100 alerts to each and reports alerts/second:
- "repeat": 50 distinct alerts that already have tickets (the storm: every firing is a repeat)
- "first sight": every alert new, so every alert opens a ticket (classification, key, journal)
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from ports import free_port, wait_port  # bench/ is on sys.path when run as a script

TOKEN = "bench-token-0123456789"

BASELINE = r"""
import sqlite3, sys, threading, uvicorn
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse
from starlette.routing import Route

class A(BaseModel):
    status: str
    labels: dict[str, str]
    annotations: dict[str, str] = {}
    startsAt: str = ""
    endsAt: str = ""
    generatorURL: str = ""
    fingerprint: str = ""

class P(BaseModel):
    alerts: list[A]

db = sqlite3.connect(sys.argv[2], check_same_thread=False, isolation_level=None)
db.execute("PRAGMA journal_mode=WAL"); db.execute("PRAGMA synchronous=FULL")
db.execute("CREATE TABLE alerts (id INTEGER PRIMARY KEY, fingerprint TEXT, status TEXT, "
           "labels TEXT, annotations TEXT, starts_at TEXT)")
lock = threading.Lock()

def store(body):
    import json
    p = P.model_validate_json(body)
    rows = [(a.fingerprint, a.status, json.dumps(a.labels), json.dumps(a.annotations), a.startsAt)
            for a in p.alerts]
    with lock:
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT INTO alerts (fingerprint, status, labels, annotations, starts_at) "
                       "VALUES (?, ?, ?, ?, ?)", rows)
        db.execute("COMMIT")
    return len(rows)

async def hook(request):
    n = await run_in_threadpool(store, await request.body())
    return JSONResponse({"stored": n})

app = Starlette(routes=[Route("/webhooks/alertmanager", hook, methods=["POST"])])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


def alert(fingerprint: str) -> dict:
    return {
        "status": "firing",
        "labels": {
            "alertname": "HighCPU",
            "instance": f"{fingerprint}.example:9100",
            "severity": "warning",
            "job": "node",
        },
        "annotations": {"summary": f"CPU above 95% on {fingerprint}", "description": "5m avg"},
        "startsAt": "2026-11-25T08:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=cpu",
        "fingerprint": fingerprint,
    }


def body(fingerprints: list[str]) -> bytes:
    return json.dumps(
        {"version": "4", "status": "firing", "receiver": "gw", "groupKey": "{}:{}",
         "truncatedAlerts": 0, "alerts": [alert(f) for f in fingerprints]}
    ).encode()  # fmt: skip


def blast(port: int, bodies: list[bytes], connections: int) -> float:
    """Post every body (spread over C keep-alive connections); seconds taken."""
    queue = iter(range(len(bodies)))
    lock = threading.Lock()
    failures: list[str] = []
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                i = next(queue, None)
            if i is None:
                break
            conn.request("POST", "/webhooks/alertmanager", bodies[i], headers)
            response = conn.getresponse()
            data = response.read()
            if response.status != 200:
                failures.append(f"{response.status} {data[:200]!r}")
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if failures:
        raise SystemExit(f"{len(failures)} failed posts, e.g. {failures[0]}")
    return elapsed


def repeat_bodies(total: int, size: int) -> list[bytes]:
    fps = [f"storm-{i % 50:02d}" for i in range(total)]
    return [body(fps[i : i + size]) for i in range(0, total, size)]


def new_bodies(total: int, size: int, run: str) -> list[bytes]:
    fps = [f"{run}-{i}" for i in range(total)]
    return [body(fps[i : i + size]) for i in range(0, total, size)]


def start_gateway(folder: str, port: int, keep_raw: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    sub = Path(folder) / keep_raw
    subprocess.run(
        [sys.executable, "-m", "gateway.cli", "init", "--dir", str(sub)],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    env.update(
        GATEWAY_HTTP__PORT=str(port),
        GATEWAY_SMTP__ENABLED="false",
        GATEWAY_WEBHOOKS__ALERTMANAGER__TOKEN=TOKEN,
        GATEWAY_WEBHOOKS__ALERTMANAGER__KEEP_RAW=keep_raw,
        GATEWAY_DAEMON__LOG_LEVEL="ERROR",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "run", "--config", str(sub / "gateway.toml")],
        env=env,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--alerts", type=int, default=20_000)
    parser.add_argument("--first-sight", type=int, default=2_000)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    c = args.connections
    with tempfile.TemporaryDirectory() as folder:
        base_port = free_port()
        baseline = subprocess.Popen(
            [sys.executable, "-c", BASELINE, str(base_port), f"{folder}/baseline.db"]
        )
        try:
            wait_port(base_port)
            blast(base_port, repeat_bodies(500, 50), 2)
            print(
                f"{args.alerts} alerts per row ({args.alerts // 10} for batch 1), {c} connections"
            )
            print(
                f"{'keep_raw':>8}  {'batch':>5}  {'baseline al/s':>13}  {'gateway al/s':>12}  ratio"
            )
            for keep_raw in ("all", "invalid"):
                port = free_port()
                gateway = start_gateway(folder, port, keep_raw)
                try:
                    wait_port(port)
                    # Warm up; this also opens the 50 tickets the storm then repeats.
                    blast(port, repeat_bodies(500, 50), 2)
                    for size in (1, 10, 100):
                        total = args.alerts if size > 1 else args.alerts // 10
                        bodies = repeat_bodies(total, size)
                        base = total / blast(base_port, bodies, c)
                        gw = total / blast(port, bodies, c)
                        print(
                            f"{keep_raw:>8}  {size:>5}  {base:>13.0f}  {gw:>12.0f}  {gw / base:.2f}"
                        )
                    run = f"{int(time.time())}-{keep_raw}"
                    for size in (1, 100):
                        bodies = new_bodies(args.first_sight, size, f"{run}-{size}")
                        rate = args.first_sight / blast(port, bodies, c)
                        print(f"{keep_raw:>8}  first sight, batch {size}: {rate:.0f} tickets/s")
                finally:
                    gateway.terminate()
                    gateway.wait(timeout=30)
        finally:
            baseline.terminate()
            baseline.wait(timeout=30)


if __name__ == "__main__":
    main()
