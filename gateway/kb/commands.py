"""`gateway kb search` and `gateway report`: the CLI faces of the KB and the reports."""

from __future__ import annotations

import json
import sys

from gateway.clock import utc_now
from gateway.config import Settings
from gateway.kb import store
from gateway.reports.query import build_report, parse_query
from gateway.reports.summary import to_csv
from gateway.storage.db import Database


def search(settings: Settings, query: str, limit: int, as_json: bool) -> int:
    db = Database(settings.database)
    try:
        with db.unit(readonly=True) as session:
            entries = store.search(session, query, limit)
            keys = store.ticket_keys(session, entries)
            found = [store.entry_to_dict(e, keys.get(e.ticket_id or 0)) for e in entries]
    finally:
        db.dispose()
    if as_json:
        print(json.dumps(found, ensure_ascii=False, indent=2))
        return 0
    for e in found:
        origin = f"  ({e['ticket']})" if e["ticket"] else ""
        print(f"KB {e['id']:<6} {e['title'][:70]}{origin}")
        print(f"           {' '.join(e['solution'].split())[:100]}")
    if not found:
        print(f"nothing found for {query!r}")
    return 0


def report(
    settings: Settings,
    start: str | None,
    end: str | None,
    group_by: str | None,
    bucket: str | None,
    fmt: str,
) -> int:
    now = utc_now()
    try:
        query = parse_query(settings, now, start, end, group_by, bucket)
    except ValueError as exc:
        print(f"gateway report: {exc}", file=sys.stderr)
        return 2
    db = Database(settings.database)
    try:
        result = build_report(db, settings, query, now)
    finally:
        db.dispose()
    sys.stdout.write(
        to_csv(result) if fmt == "csv" else json.dumps(result, ensure_ascii=False, indent=2) + "\n"
    )
    return 0
