"""Accuracy of the default rules on the labelled tickets in tests/data (run with -s for tables)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.rules.engine import classify
from gateway.rules.loader import load_rules
from gateway.rules.model import PRIORITIES, TICKET_TYPES, RuleSet

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_RULES = ROOT / "gateway" / "defaults" / "rules.yaml"
EVAL = ROOT / "tests" / "data" / "classification_eval.yaml"
HOLDOUT = ROOT / "tests" / "data" / "classification_holdout.yaml"


def _fields(item: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = item.get("labels") or {}
    return {
        "subject": item["subject"],
        "body": item.get("body", ""),
        "source": item.get("source", "smtp"),
        "severity": labels.get("severity", ""),
        **{f"labels.{k}": v for k, v in labels.items()},
    }


def confusion(title: str, pairs: Sequence[tuple[str, str]], labels: Sequence[str]) -> str:
    """A plain-text confusion table: rows are expected, columns are what the rules decided."""
    counts = Counter(pairs)
    width = max(len(x) for x in labels) + 2
    header = "".ljust(width) + "".join(x.rjust(width) for x in labels)
    lines = [f"{title} (rows: expected, columns: decided)", header]
    for row in labels:
        cells = "".join(str(counts[(row, col)] or ".").rjust(width) for col in labels)
        lines.append(row.ljust(width) + cells)
    return "\n".join(lines)


def evaluate(ruleset: RuleSet, path: Path) -> tuple[float, float]:
    items: list[dict[str, Any]] = yaml.safe_load(path.read_text(encoding="utf-8"))
    types: list[tuple[str, str]] = []
    priorities: list[tuple[str, str]] = []
    misses: list[str] = []
    for item in items:
        decision = classify(ruleset, _fields(item))
        types.append((item["type"], decision.type))
        priorities.append((item["priority"], decision.priority))
        if (decision.type, decision.priority) != (item["type"], item["priority"]):
            misses.append(
                f"  {item['type']}/{item['priority']} -> {decision.type}/{decision.priority} "
                f"[{decision.rule}] {item['subject']}"
            )
    type_acc = sum(a == b for a, b in types) / len(items)
    prio_acc = sum(a == b for a, b in priorities) / len(items)
    print(f"\n{path.name}: {len(items)} tickets, type {type_acc:.1%}, priority {prio_acc:.1%}")
    print(confusion("type", types, TICKET_TYPES))
    print(confusion("priority", priorities, PRIORITIES))
    print("misses:\n" + ("\n".join(misses) or "  none"))
    return type_acc, prio_acc


@pytest.fixture(scope="module")
def default_rules() -> RuleSet:
    return load_rules(DEFAULT_RULES)


def test_default_rules_accuracy(default_rules: RuleSet) -> None:
    items = yaml.safe_load(EVAL.read_text(encoding="utf-8"))
    assert len(items) >= 200
    type_acc, prio_acc = evaluate(default_rules, EVAL)
    assert type_acc >= 0.90
    assert prio_acc >= 0.90


def test_default_rules_on_held_out_tickets(default_rules: RuleSet) -> None:
    # These were not used to tune the rules; a lower bar catches rules that only fit the
    # evaluation set.
    type_acc, prio_acc = evaluate(default_rules, HOLDOUT)
    assert type_acc >= 0.80
    assert prio_acc >= 0.80
