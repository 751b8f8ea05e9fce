"""The `gateway` command (CONTRACT.md "CLI")."""

from __future__ import annotations

import argparse
import json
import logging
import secrets
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import select

from gateway.config import ConfigError, Settings, load_settings, resolve_config_path
from gateway.rules.model import RulesError
from gateway.tickets.states import Action


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(resolve_config_path(args.config))


def _default_text(name: str) -> str:
    return resources.files("gateway.defaults").joinpath(name).read_text(encoding="utf-8")


def cmd_init(args: argparse.Namespace) -> int:
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / "gateway.toml"
    rules_path = folder / "rules.yaml"
    if config_path.exists():
        print(f"{config_path}: exists, left as it is")
    else:
        token = secrets.token_urlsafe(24)
        text = _default_text("gateway.toml").format(
            database_url=f"sqlite:///{(folder / 'gateway.db').as_posix()}",
            admin_token=token,
            reply_secret=secrets.token_hex(16),
        )
        config_path.write_text(text, encoding="utf-8")
        print(f"{config_path}: written (admin API token: {token})")
    if rules_path.exists():
        print(f"{rules_path}: exists, left as it is")
    else:
        rules_path.write_text(_default_text("rules.yaml"), encoding="utf-8")
        print(f"{rules_path}: written")
    settings = load_settings(config_path)
    _migrate(settings)
    print(f"database ready: {settings.database.url}")
    return 0


def _migrate(settings: Settings) -> None:
    from gateway.storage import migrate
    from gateway.storage.db import Database

    db = Database(settings.database)
    try:
        migrate.upgrade(db.engine)
    finally:
        db.dispose()


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _migrate(settings)
    print(f"schema up to date: {settings.database.url}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from gateway import daemon

    settings = _settings(args)
    logging.getLogger().setLevel(settings.daemon.log_level)
    return daemon.run(settings)


def _tickets_query(args: argparse.Namespace) -> list[dict[str, Any]]:
    from gateway.storage.db import Database
    from gateway.storage.models import Ticket
    from gateway.tickets.serialize import event_to_dict, ticket_to_dict

    db = Database(_settings(args).database)
    try:
        with db.unit(readonly=True) as session:
            if args.tickets_command == "show":
                ticket = session.scalars(select(Ticket).where(Ticket.key == args.key)).first()
                if ticket is None:
                    return []
                data = ticket_to_dict(ticket)
                data["events"] = [event_to_dict(e) for e in ticket.events]
                return [data]
            stmt = select(Ticket).order_by(Ticket.id.desc()).limit(args.limit)
            if args.status:
                stmt = stmt.where(Ticket.status == args.status)
            return [ticket_to_dict(t) for t in session.scalars(stmt)]
    finally:
        db.dispose()


def cmd_act(args: argparse.Namespace) -> int:
    """Run a lifecycle action as a local administrator (the CLI has the database itself)."""
    from gateway.clock import utc_now
    from gateway.kb.resolve import Resolution, record_resolution
    from gateway.storage.db import Database
    from gateway.storage.models import Ticket
    from gateway.tickets import service
    from gateway.tickets.states import Command, Refused

    db = Database(_settings(args).database)
    try:
        with db.unit() as session:
            ticket = session.scalars(select(Ticket).where(Ticket.key == args.key)).first()
            if ticket is None:
                print(f"no ticket {args.key}", file=sys.stderr)
                return 1
            cmd = Command(args.action, args.actor, "admin", args.assignee, args.group, args.reason)
            fix = Resolution(args.symptom, args.steps, args.solution, args.prevention)
            if not fix.empty and args.action != "resolve":
                print(f"{args.key}: --symptom/--steps/--solution/--prevention go with resolve",
                      file=sys.stderr)  # fmt: skip
                return 1
            now = utc_now()
            result = service.apply_command(session, ticket, cmd, "cli", now)
            if isinstance(result, Refused):
                print(f"{args.key}: {result.reason}", file=sys.stderr)
                return 1
            entry = record_resolution(
                session, ticket, fix, service.Actor(args.actor, "admin", "cli"), now
            )
            if entry is not None:
                print(f"{args.key}: knowledge base entry {entry.id}")
            print(f"{args.key}: {ticket.status} {result.note}".rstrip())
    finally:
        db.dispose()
    return 0


def cmd_tickets(args: argparse.Namespace) -> int:
    if args.tickets_command == "act":
        return cmd_act(args)
    rows = _tickets_query(args)
    if args.tickets_command == "show" and not rows:
        print(f"no ticket {args.key}", file=sys.stderr)
        return 1
    if args.json:
        payload: Any = rows[0] if args.tickets_command == "show" else rows
        print(json.dumps(payload, ensure_ascii=False, indent=2))
        return 0
    if args.tickets_command == "show":
        t = rows[0]
        print(f"{t['key']}  {t['type']}  {t['priority']}  {t['status']}")
        print(f"subject:   {t['subject']}")
        print(f"requester: {t['requester']}   group: {t['group']}   assignee: {t['assignee']}")
        print(f"created:   {t['created_at']}   category: {t['category']}")
        if t["description"]:
            print("\n" + t["description"].strip() + "\n")
        for item in t["checklist"]:
            mark = "x" if item["done"] else " "
            extra = "" if item["mandatory"] else "  (optional)"
            print(f"  [{mark}] {item['n']}. {item['text']}{extra}")
        for e in t["events"]:
            note = f"  {e['note']}" if e["note"] else ""
            print(f"  {e['at']}  {e['actor']} via {e['channel']}: {e['kind']}{note}")
        return 0
    for t in rows:
        print(
            f"{t['key']:<12} {t['priority']} {t['status']:<16} {t['type']:<10} "
            f"{(t['group'] or '-'):<14} {t['subject'][:60]}"
        )
    if not rows:
        print("no tickets")
    return 0


def cmd_sla(args: argparse.Namespace) -> int:
    """`gateway sla explain KEY`: the clock's history, due times and escalations."""
    from gateway.clock import utc_now
    from gateway.sla.explain import explain
    from gateway.storage.db import Database
    from gateway.storage.models import SlaEscalation, Ticket

    settings = _settings(args)
    db = Database(settings.database)
    try:
        with db.unit(readonly=True) as session:
            ticket = session.scalars(select(Ticket).where(Ticket.key == args.key)).first()
            if ticket is None:
                print(f"no ticket {args.key}", file=sys.stderr)
                return 1
            fired = session.scalars(
                select(SlaEscalation)
                .where(SlaEscalation.ticket_id == ticket.id)
                .order_by(SlaEscalation.id)
            ).all()
            print(explain(settings.sla_book(), ticket, fired, utc_now(), settings.zone))
    finally:
        db.dispose()
    return 0


def cmd_rules(args: argparse.Namespace) -> int:
    from gateway.rules import commands

    if args.rules_command == "check":
        return commands.check(args.file, args.config)
    return commands.test(args.config, eml=args.eml, text=args.text, as_json=args.json)


def cmd_inspections(args: argparse.Namespace) -> int:
    from gateway.inspections import commands

    if args.inspections_command == "run":
        return commands.run_now(_settings(args), args.name)
    return commands.list_schedules(_settings(args), as_json=args.json)


def cmd_kb(args: argparse.Namespace) -> int:
    from gateway.kb import commands

    return commands.search(_settings(args), args.text, args.limit, args.json)


def cmd_report(args: argparse.Namespace) -> int:
    from gateway.kb import commands

    return commands.report(
        _settings(args), args.start, args.end, args.group_by, args.bucket, args.format
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway", description="ops-gateway: IT-ops ticket intake"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "--config", help="config file (default: $GATEWAY_CONFIG or var/gateway.toml)"
        )
        return p

    p = sub.add_parser(
        "init", help="write default gateway.toml and rules.yaml, create the database"
    )
    p.add_argument("--dir", default="var", help="folder to write into (default: ./var)")
    p.set_defaults(func=cmd_init)
    with_config(sub.add_parser("run", help="run the daemon")).set_defaults(func=cmd_run)
    with_config(sub.add_parser("migrate", help="bring the schema up to date")).set_defaults(
        func=cmd_migrate
    )

    tickets = sub.add_parser("tickets", help="list and show tickets")
    tsub = tickets.add_subparsers(dest="tickets_command", required=True)
    p = with_config(tsub.add_parser("list", help="list tickets, newest first"))
    p.add_argument("--status")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p = with_config(tsub.add_parser("show", help="one ticket with its journal"))
    p.add_argument("key")
    p.add_argument("--json", action="store_true")
    p = with_config(tsub.add_parser("act", help="assign, start, pend, resolve, close, reopen, ..."))
    p.add_argument("key")
    p.add_argument("action", choices=[str(a) for a in Action])
    p.add_argument("--assignee")
    p.add_argument("--group")
    p.add_argument("--reason", help="needed to reassign, reopen or reject")
    p.add_argument("--as", dest="actor", default="admin@cli", help="who is acting (journal)")
    for name in ("symptom", "steps", "solution", "prevention"):
        # With resolve: the resolution; a solution makes a knowledge-base entry.
        p.add_argument(f"--{name}", default="", help=f"with resolve: the {name}")
    tickets.set_defaults(func=cmd_tickets)

    rules = sub.add_parser("rules", help="test and check classification rules")
    rsub = rules.add_subparsers(dest="rules_command", required=True)
    p = with_config(rsub.add_parser("test", help="dry-run classification"))
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--eml", help="an RFC 5322 message file")
    src.add_argument("--text", help="text to classify (as subject and body)")
    p.add_argument("--json", action="store_true")
    p = with_config(rsub.add_parser("check", help="validate a rules file"))
    p.add_argument("file", nargs="?", help="rules file (default: the configured one)")
    rules.set_defaults(func=cmd_rules)

    sla = sub.add_parser("sla", help="SLA clocks")
    ssub = sla.add_subparsers(dest="sla_command", required=True)
    p = with_config(ssub.add_parser("explain", help="a ticket's SLA clock history"))
    p.add_argument("key")
    sla.set_defaults(func=cmd_sla)

    insp = sub.add_parser("inspections", help="scheduled inspection tickets")
    isub = insp.add_subparsers(dest="inspections_command", required=True)
    p = with_config(isub.add_parser("list", help="schedules with their last and next fire time"))
    p.add_argument("--json", action="store_true")
    p = with_config(isub.add_parser("run", help="create a schedule's ticket now"))
    p.add_argument("name")
    insp.set_defaults(func=cmd_inspections)

    kb = sub.add_parser("kb", help="the knowledge base")
    ksub = kb.add_subparsers(dest="kb_command", required=True)
    p = with_config(ksub.add_parser("search", help="search entries (Chinese or English)"))
    p.add_argument("text")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--json", action="store_true")
    kb.set_defaults(func=cmd_kb)

    p = with_config(sub.add_parser("report", help="ticket volume, times, SLA, reopen rate"))
    p.add_argument("--from", dest="start", help="YYYY-MM-DD or ISO time (default: 30 days ago)")
    p.add_argument("--to", dest="end", help="YYYY-MM-DD (included) or ISO time (default: now)")
    p.add_argument("--group-by", choices=["type", "priority", "category", "group", "source"])
    p.add_argument("--bucket", choices=["day", "week", "month"])
    p.add_argument("--format", choices=["json", "csv"], default="json")
    p.set_defaults(func=cmd_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Alembic announces every plugin at INFO; only its warnings are news.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"gateway: configuration error:\n{exc}", file=sys.stderr)
        return 2
    except RulesError as exc:
        print(f"gateway: rules error:\n{exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
