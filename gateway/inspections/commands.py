"""`gateway inspections list` and `gateway inspections run NAME`."""

from __future__ import annotations

import json
import sys

from gateway.clock import utc_now
from gateway.config import Settings
from gateway.storage.db import Database


def list_schedules(settings: Settings, *, as_json: bool) -> int:
    """Every schedule with its last and next fire time."""
    from gateway.ingest.inspections import describe

    db = Database(settings.database)
    try:
        with db.unit(readonly=True) as session:
            rows = describe(session, settings, utc_now())
    finally:
        db.dispose()
    if as_json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    if not rows:
        print("no inspections (add [[inspections]] to the config or POST /api/v1/inspections)")
    for r in rows:
        when = r["cron"] or f"every {r['interval_seconds']:g}s"
        if r["working_days_only"]:
            when += f" on working days ({r['calendar']})"
        state = "" if r["enabled"] else "  [disabled]"
        print(f"{r['name']}  ({r['origin']}){state}")
        print(f"  when:     {when}, {r['timezone']}; catch_up = {r['catch_up']}")
        print(f"  subject:  {r['template']['subject']}")
        print(f"  last:     {r['last_fire'] or '-'}")
        print(f"  next:     {r['next_fire'] or '-'}")
        if r.get("problem"):
            print(f"  problem:  {r['problem']}")
    return 0


def run_now(settings: Settings, name: str) -> int:
    """A ticket from the schedule's template now, whatever its fire times say."""
    from gateway.ingest.inspections import Inspector
    from gateway.pipeline import Pipeline
    from gateway.rules.holder import RulesHolder

    db = Database(settings.database)
    try:
        rules = RulesHolder(settings.rules_path)
        pipeline = Pipeline(
            db, settings, rules.classify, utc_now, groups=lambda g: rules.ruleset.group(g)
        )
        try:
            fired = Inspector(pipeline).run_now(name)
        except KeyError:
            print(f"no inspection {name!r} (see `gateway inspections list`)", file=sys.stderr)
            return 1
    finally:
        db.dispose()
    print(f"{name}: {fired.key} created")
    return 0
