"""Value objects of the rules engine: what a rules file says and what classification decides."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from gateway.rules.engine import Matcher

TICKET_TYPES = ("incident", "change", "request", "inspection")
PRIORITIES = ("P0", "P1", "P2", "P3")
STRATEGIES = ("round_robin", "least_open", "none")
Strategy = Literal["round_robin", "least_open", "none"]

# Fields a condition may look at. `labels.<name>` / `annotations.<name>` (alerts) and
# `cmdb.<attr>` (CMDB enrichment) are open-ended families, validated by prefix only.
FIELDS = ("subject", "body", "sender", "recipient", "source", "severity")
FIELD_PREFIXES = ("labels.", "annotations.", "cmdb.")
DEFAULT_FIELDS = ("subject", "body")


@dataclass(frozen=True)
class Condition:
    """One block of a rule's `when:`; it holds when every part it names holds.

    Keywords are kept as written; the engine normalises them (NFKC, casefold).
    """

    fields: tuple[str, ...] = DEFAULT_FIELDS
    any: tuple[str, ...] = ()
    all: tuple[str, ...] = ()
    none: tuple[str, ...] = ()
    regex: tuple[str, ...] = ()
    equals: tuple[str, ...] = ()
    source: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        return not (self.any or self.all or self.none or self.regex or self.equals or self.source)


@dataclass(frozen=True)
class Actions:
    """What a matching rule sets. `None` / empty means "leaves it to later rules or the default"."""

    type: str | None = None
    priority: str | None = None
    category: str | None = None
    group: str | None = None
    assignee: str | None = None
    tags: tuple[str, ...] = ()
    sla_policy: str | None = None
    approvers: tuple[str, ...] = ()
    stop: bool = True
    # By default the first rule to set a field keeps it (so specific rules placed first win
    # over general ones); `override: true` lets this rule replace values set earlier.
    override: bool = False


@dataclass(frozen=True)
class Rule:
    name: str
    conditions: tuple[Condition, ...]
    actions: Actions
    description: str = ""
    line: int = 0  # where the rule starts in its file, for explanations


@dataclass(frozen=True)
class Group:
    name: str
    members: tuple[str, ...] = ()
    strategy: Strategy = "none"


@dataclass(frozen=True)
class Match:
    """One piece of evidence: `rule` matched `keyword_or_pattern` on `field`.

    `matched_text` is taken from the normalised text (NFKC, case-folded), so full-width or
    upper-case input shows in its folded form.
    """

    rule: str
    field: str
    keyword_or_pattern: str
    matched_text: str
    kind: Literal["keyword", "regex", "equals", "source"] = "keyword"

    def to_dict(self) -> dict[str, str]:
        # `keyword` / `pattern` are the keys the pipeline's journal note reads.
        key = "pattern" if self.kind == "regex" else "keyword"
        return {
            "rule": self.rule,
            "field": self.field,
            "kind": self.kind,
            key: self.keyword_or_pattern,
            "matched_text": self.matched_text,
        }


@dataclass(frozen=True)
class Decision:
    """The outcome of classification.

    `rule` names the deciding rule (the one that stopped evaluation, else the last one that
    matched, else "default"); `rules` lists every rule that contributed, in order.
    """

    type: str
    priority: str
    category: str | None = None
    group: str | None = None
    assignee: str | None = None
    tags: tuple[str, ...] = ()
    sla_policy: str | None = None
    approvers: tuple[str, ...] = ()
    rule: str = "default"
    rules: tuple[str, ...] = ("default",)
    matches: tuple[Match, ...] = ()
    # The fields a matching rule set (the rest came from the default): a channel's own
    # suggestion (an alert's severity) gives way only to these.
    set_by_rules: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "priority": self.priority,
            "category": self.category,
            "group": self.group,
            "assignee": self.assignee,
            "tags": list(self.tags),
            "sla_policy": self.sla_policy,
            "approvers": list(self.approvers),
            "rule": self.rule,
            "rules": list(self.rules),
            "matches": [m.to_dict() for m in self.matches],
        }


@dataclass(frozen=True)
class RuleSet:
    """A validated, compiled rules file. Build with `loader.load_rules` or
    `engine.compile_ruleset`."""

    rules: tuple[Rule, ...]
    default: Actions
    groups: dict[str, Group]
    matcher: Matcher = field(repr=False, compare=False)
    path: Path | None = None

    def group(self, name: str | None) -> Group | None:
        return self.groups.get(name) if name else None


@dataclass(frozen=True)
class Problem:
    """A reason a rules file cannot be used, printed as `file:line: reason`."""

    file: str
    line: int | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.reason}"


class RulesError(Exception):
    """A rules file failed validation; `problems` lists every reason with its line."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


# The decision when the file has no `default:` block (matches gateway.toml's ticket defaults).
BUILTIN_DEFAULT = Actions(type="request", priority="P3")
