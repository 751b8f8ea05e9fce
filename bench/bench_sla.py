"""SLA scanner benchmark: one pass over N open tickets of which 100 are due, on SQLite.

    .venv/bin/python bench/bench_sla.py [--open 100000 1000] [--due 100] [--repeat 5]

Setup inserts the tickets and their "created" journal rows with Core executemany (the ORM
would take minutes for 100,000). Every ticket is an open P0 incident; the due ones have
`next_escalation_at` in the past, the rest in the future, as the pipeline leaves them. A
pass claims the due ones through the index, evaluates their clocks from the journal, fires
their levels (ledger rows + journal events) and reschedules them. Each repeat starts from a
fresh copy of the database so every pass does the same work. Outbound is off: mail
rendering is the outbox's cost, measured in bench_smtp.py's terms, not the scan's.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.config import DatabaseSettings, load_settings
from gateway.sla.scanner import refresh_gauges, scan
from gateway.storage import migrate
from gateway.storage.db import Database
from gateway.storage.models import Ticket, TicketEvent

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def build(path: Path, total: int, due: int) -> None:
    db = Database(DatabaseSettings(url=f"sqlite:///{path}"))
    migrate.upgrade(db.engine)
    rows = []
    for n in range(total):
        is_due = n % (total // due) == 0 and n // (total // due) < due
        created = NOW - (timedelta(hours=2) if is_due else timedelta(minutes=10))
        rows.append(
            {
                "key": f"INC-{n:07d}", "type": "incident", "priority": "P0", "status": "new",
                "subject": f"server {n} down", "description": "", "requester": None,
                "requester_name": "", "source": "smtp", "tags": [], "participants": [],
                "labels": {}, "occurrences": 1, "approvers": [], "approvals": [],
                "sla_policy": "incident-p0", "sla_pinned": True, "breached": False,
                "response_due": created + timedelta(hours=1),
                "resolution_due": created + timedelta(hours=4),
                "next_escalation_at": created + timedelta(minutes=48),
                "created_at": created, "updated_at": created,
            }
        )  # fmt: skip
    with db.unit() as s:
        s.execute(insert(Ticket), rows)
        events = [
            {
                "ticket_id": i + 1, "at": r["created_at"], "actor": "x@example.com",
                "channel": "smtp", "kind": "created", "before": {},
                "after": {"status": "new", "priority": "P0"}, "note": "", "public": True,
            }
            for i, r in enumerate(rows)
        ]  # fmt: skip
        s.execute(insert(TicketEvent), events)
    db.dispose()


def run(total: int, due: int, repeat: int, folder: Path) -> tuple[list[float], float, int]:
    template = folder / f"t{total}.db"
    build(template, total, due)
    settings = load_settings(None, require_file=False)
    times: list[float] = []
    fired = 0
    gauge = 0.0
    for i in range(repeat):
        copy = folder / f"run{total}-{i}.db"
        shutil.copy(template, copy)
        db = Database(DatabaseSettings(url=f"sqlite:///{copy}"))
        cfg = settings.model_copy(update={"database": db.settings})
        scan(db, cfg, NOW - timedelta(days=1))  # warm: connection, compiled statements
        started = time.perf_counter()
        fired = len(scan(db, cfg, NOW))
        times.append(time.perf_counter() - started)
        started = time.perf_counter()
        refresh_gauges(db, cfg, NOW)
        gauge = time.perf_counter() - started
        db.dispose()
    return times, gauge, fired


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--open", type=int, nargs="+", default=[100_000, 1_000])
    parser.add_argument("--due", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"SLA scan, SQLite, {args.due} due tickets, median of {args.repeat} passes")
    with tempfile.TemporaryDirectory() as tmp:
        for total in args.open:
            times, gauge, fired = run(total, args.due, args.repeat, Path(tmp))
            print(
                f"  {total:>7,} open: scan {statistics.median(times) * 1000:6.1f} ms "
                f"(min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f}), "
                f"{fired} levels fired; at-risk gauge {gauge * 1000:.1f} ms"
            )


if __name__ == "__main__":
    main()
