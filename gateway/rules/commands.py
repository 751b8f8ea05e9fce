"""`gateway rules check` and `gateway rules test`: work on files, never touch the store."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from gateway.config import Settings, load_settings, resolve_config_path
from gateway.ingest.mail import mail_to_intake
from gateway.intake import Intake, Source
from gateway.rules.engine import classify_intake
from gateway.rules.loader import check_rules, load_rules
from gateway.rules.model import Decision


def check(file: str | None, config: str | None) -> int:
    """Print `file:line: reason` for every problem; exit 1 when there is any."""
    path = Path(file) if file else load_settings(resolve_config_path(config)).rules_path
    problems = check_rules(path)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    ruleset = load_rules(path)
    print(f"{path}: ok, {len(ruleset.rules)} rules, {len(ruleset.groups)} groups")
    return 0


def test(config: str | None, *, eml: str | None, text: str | None, as_json: bool) -> int:
    """Classify a message or a text with the configured rules and explain the decision."""
    settings = load_settings(resolve_config_path(config))
    ruleset = load_rules(settings.rules_path)
    intake = _intake(settings, eml, text)
    decision = classify_intake(ruleset, intake)
    if as_json:
        print(json.dumps(decision.to_dict(), ensure_ascii=False, indent=2))
    else:
        print(_describe(decision))
    return 0


def _intake(settings: Settings, eml: str | None, text: str | None) -> Intake:
    if eml is not None:
        return mail_to_intake(Path(eml).read_bytes(), Source.SMTP, settings).intake
    first, _, rest = (text or "").partition("\n")
    return Intake(source=Source.API, sender="", subject=first, body=rest or first)


def _describe(decision: Decision) -> str:
    lines = [
        f"type:     {decision.type}",
        f"priority: {decision.priority}",
        f"category: {decision.category or '-'}",
        f"group:    {decision.group or '-'}",
        f"rule:     {decision.rule}",
    ]
    if decision.assignee:
        lines.append(f"assignee: {decision.assignee}")
    if decision.approvers:
        lines.append(f"approvers: {', '.join(decision.approvers)}")
    if decision.matches:
        lines.append("because:")
        for m in decision.matches:
            lines.append(f"  rule {m.rule}: {m.kind} {m.keyword_or_pattern!r} in {m.field}")
    else:
        lines.append("because: no rule matched; the default applies")
    return "\n".join(lines)
