"""Compile rules into one Aho-Corasick automaton and classify field values against it (pure).

Cost model: each field is normalised and scanned once; only rules that one of the found
keywords points at (plus the few rules without positive keywords) are evaluated, so the time
per intake grows with the text and the number of hits, not with the number of rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ahocorasick

from gateway.intake import Intake
from gateway.rules.model import (
    BUILTIN_DEFAULT,
    Actions,
    Condition,
    Decision,
    Group,
    Match,
    Rule,
    RuleSet,
)
from gateway.rules.text import from_bytes, normalise, to_bytes

# A pasted log dump must not stall intake; what decides a ticket is near the top.
MAX_FIELD_CHARS = 100_000

_SCALARS = ("type", "priority", "category", "group", "assignee", "sla_policy", "approvers")


def _is_word(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


@dataclass(frozen=True)
class Keyword:
    """A keyword as the automaton sees it. ASCII words match whole words only ("bug" does not
    match "debug"); a leading/trailing `*` lifts that on its side ("upgrad*")."""

    key: str
    need_start: bool
    need_end: bool

    @classmethod
    def parse(cls, raw: str) -> Keyword:
        text = raw.strip()
        open_start, open_end = text.startswith("*"), text.endswith("*") and len(text) > 1
        key = normalise(text.strip("*"))
        return cls(
            key,
            need_start=not open_start and bool(key) and _is_word(key[0]),
            need_end=not open_end and bool(key) and _is_word(key[-1]),
        )


@dataclass(frozen=True)
class _Cond:
    fields: tuple[str, ...]
    any: tuple[tuple[int, str], ...]  # (keyword id, keyword as written)
    all: tuple[tuple[int, str], ...]
    none: tuple[tuple[int, str], ...]
    # The ids alone: a set intersection with the hits replaces a Python loop over long
    # keyword lists (the default rules' lists run to dozens of words).
    any_ids: frozenset[int]
    none_ids: frozenset[int]
    regex: tuple[tuple[re.Pattern[str], str], ...]
    equals: frozenset[str]
    source: frozenset[str]


@dataclass(frozen=True)
class _Compiled:
    rule: Rule
    conds: tuple[_Cond, ...]


class Matcher:
    """The compiled form of a rule list: one automaton, per-rule conditions and a hit index."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self._ids: dict[Keyword, int] = {}
        self.compiled: list[_Compiled] = []
        self.index: dict[int, list[int]] = {}  # keyword id -> rules it can make match
        self.always: list[int] = []  # rules without positive keywords: always evaluated
        self.scan_fields: set[str] = set()
        self.text_fields: set[str] = set()
        for position, rule in enumerate(rules):
            conds = tuple(self._compile_condition(c) for c in rule.conditions)
            self.compiled.append(_Compiled(rule, conds))
            self._index_rule(position, conds)
        self.automaton = ahocorasick.Automaton()
        by_key: dict[str, list[tuple[int, bool, bool]]] = {}
        for kw, kid in self._ids.items():
            by_key.setdefault(kw.key, []).append((kid, kw.need_start, kw.need_end))
        for key, variants in by_key.items():
            data = to_bytes(key)
            ids = frozenset(kid for kid, _, _ in variants)
            self.automaton.add_word(data, (len(data), tuple(variants), ids))
        if by_key:
            self.automaton.make_automaton()

    def _keyword_ids(self, words: tuple[str, ...]) -> tuple[tuple[int, str], ...]:
        out = []
        for raw in words:
            kw = Keyword.parse(raw)
            out.append((self._ids.setdefault(kw, len(self._ids)), raw))
        return tuple(out)

    def _compile_condition(self, c: Condition) -> _Cond:
        if c.any or c.all or c.none:
            self.scan_fields.update(c.fields)
        if c.any or c.all or c.none or c.regex or c.equals:
            self.text_fields.update(c.fields)
        any_, none = self._keyword_ids(c.any), self._keyword_ids(c.none)
        return _Cond(
            fields=c.fields,
            any=any_,
            all=self._keyword_ids(c.all),
            none=none,
            any_ids=frozenset(kid for kid, _ in any_),
            none_ids=frozenset(kid for kid, _ in none),
            regex=tuple((re.compile(p, re.IGNORECASE), p) for p in c.regex),
            equals=frozenset(normalise(v) for v in c.equals),
            source=frozenset(s.casefold() for s in c.source),
        )

    def _index_rule(self, position: int, conds: tuple[_Cond, ...]) -> None:
        # Every condition must hold, so the keywords of any one condition's `any` list (or
        # one keyword of its `all` list) are a necessary trigger for the whole rule.
        for cond in conds:
            trigger = cond.any or cond.all[:1]
            if trigger:
                for kid, _ in trigger:
                    self.index.setdefault(kid, []).append(position)
                return
        self.always.append(position)

    def scan(self, text: str) -> dict[int, str]:
        """Keyword ids found in `to_bytes(normalised text)`, each with its first hit's text."""
        found: dict[int, str] = {}
        if not self._ids:
            return found
        last = len(text) - 1
        for end, (length, variants, ids) in self.automaton.iter(text):
            # A keyword repeated through a long body is decided at its first good hit; the
            # boundary checks below are the cost of every further hit (measured: most of it).
            if found.keys() >= ids:
                continue
            start = end - length + 1
            start_ok = start == 0 or not _is_word(text[start - 1])
            end_ok = end == last or not _is_word(text[end + 1])
            for kid, need_start, need_end in variants:
                if kid in found or (need_start and not start_ok) or (need_end and not end_ok):
                    continue
                stop = end + 1
                if not need_end and _is_word(text[end]):  # "upgrad*" shows "upgrading"
                    while stop <= last and _is_word(text[stop]):
                        stop += 1
                found[kid] = from_bytes(text[start:stop])
        return found


def compile_ruleset(
    rules: Iterable[Rule],
    default: Actions = BUILTIN_DEFAULT,
    groups: Mapping[str, Group] | None = None,
    path: str | None = None,
) -> RuleSet:
    """Compile already-validated rules (regexes must compile; see loader.check_rules)."""
    rules = tuple(rules)
    return RuleSet(
        rules=rules,
        default=default,
        groups=dict(groups or {}),
        matcher=Matcher(rules),
        path=Path(path) if path else None,
    )


def _evaluate(
    c: _Compiled,
    fields: Mapping[str, str],
    texts: dict[str, str],
    hits: dict[str, dict[int, str]],
    present: dict[tuple[str, ...], set[int]],
) -> list[Match] | None:
    """The evidence for `c`'s rule if every condition holds, else None. `present` caches,
    per tuple of field names, the keyword ids found in any of them."""
    name = c.rule.name
    evidence: list[Match] = []

    def find(kid: int, raw: str, names: tuple[str, ...]) -> Match | None:
        for f in names:
            text = hits.get(f, {}).get(kid)
            if text is not None:
                return Match(name, f, raw, text)
        return None

    def found_in(names: tuple[str, ...]) -> set[int]:
        ids = present.get(names)
        if ids is None:
            ids = present[names] = set().union(*(hits.get(f, ()) for f in names))
        return ids

    for cond in c.conds:
        if cond.source:
            source = (fields.get("source") or "").casefold()
            if source not in cond.source:
                return None
            evidence.append(Match(name, "source", source, source, "source"))
        if cond.any:
            ids = cond.any_ids & found_in(cond.fields)
            if not ids:
                return None
            evidence.extend(
                m for kid, raw in cond.any if kid in ids and (m := find(kid, raw, cond.fields))
            )
        for kid, raw in cond.all:
            m = find(kid, raw, cond.fields)
            if m is None:
                return None
            evidence.append(m)
        if cond.none_ids and not cond.none_ids.isdisjoint(found_in(cond.fields)):
            return None
        if cond.regex:
            found = [
                Match(name, f, raw, mo.group(0), "regex")
                for pattern, raw in cond.regex
                for f in cond.fields
                if (mo := pattern.search(texts.get(f, "")))
            ]
            if not found:
                return None
            evidence.append(found[0])
        if cond.equals:
            hit = next((f for f in cond.fields if texts.get(f) in cond.equals), None)
            if hit is None:
                return None
            evidence.append(Match(name, hit, texts[hit], texts[hit], "equals"))
    # A keyword in two lists of one rule (say `any` and a second block) is one piece of evidence.
    return list(dict.fromkeys(evidence))


def classify(ruleset: RuleSet, fields: Mapping[str, str]) -> Decision:
    """Decide type, priority, routing and the evidence for `fields` (subject, body, ...)."""
    m = ruleset.matcher
    texts = {f: normalise(fields[f][:MAX_FIELD_CHARS]) for f in m.text_fields if fields.get(f)}
    hits = {f: m.scan(to_bytes(texts[f])) for f in m.scan_fields if f in texts}
    candidates = set(m.always)
    for found in hits.values():
        for kid in found:
            candidates.update(m.index.get(kid, ()))

    state: dict[str, Any] = {}
    tags: list[str] = []
    matched: list[str] = []
    evidence: list[Match] = []
    stopper: str | None = None
    present: dict[tuple[str, ...], set[int]] = {}
    for position in sorted(candidates):
        compiled = m.compiled[position]
        found_evidence = _evaluate(compiled, fields, texts, hits, present)
        if found_evidence is None:
            continue
        actions = compiled.rule.actions
        _apply(actions, state, tags)
        matched.append(compiled.rule.name)
        evidence.extend(found_evidence)
        if actions.stop:
            stopper = compiled.rule.name
            break
    set_by_rules = tuple(name for name in _SCALARS if state.get(name))
    # The default fills whatever no matching rule set.
    _apply(ruleset.default, state, [])
    if not tags:
        tags.extend(ruleset.default.tags)
    return Decision(
        type=str(state.get("type") or BUILTIN_DEFAULT.type),
        priority=str(state.get("priority") or BUILTIN_DEFAULT.priority),
        category=state.get("category"),
        group=state.get("group"),
        assignee=state.get("assignee"),
        tags=tuple(tags),
        sla_policy=state.get("sla_policy"),
        approvers=tuple(state.get("approvers") or ()),
        rule=stopper or (matched[-1] if matched else "default"),
        rules=tuple(matched) or ("default",),
        matches=tuple(evidence),
        set_by_rules=set_by_rules,
    )


def _apply(actions: Actions, state: dict[str, Any], tags: list[str]) -> None:
    for name in _SCALARS:
        value = getattr(actions, name)
        if value and (actions.override or not state.get(name)):
            state[name] = value
    tags.extend(t for t in actions.tags if t not in tags)


def intake_fields(intake: Intake, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The classification fields of an intake; `extra` adds e.g. `cmdb.<attr>` values."""
    sender = f"{intake.sender_name} <{intake.sender}>" if intake.sender_name else intake.sender
    fields = {
        "subject": intake.subject,
        "body": intake.body,
        "sender": sender,
        "recipient": "\n".join((*intake.recipients, *intake.cc)),
        "source": str(intake.source),
        "severity": intake.labels.get("severity", ""),
    }
    fields.update({f"labels.{k}": v for k, v in intake.labels.items()})
    # CMDB enrichment keeps the CI as labels `cmdb.<attr>`: rules also name them `cmdb.<attr>`.
    fields.update({k: v for k, v in intake.labels.items() if k.startswith("cmdb.")})
    fields.update({f"annotations.{k}": v for k, v in intake.annotations.items()})
    fields.update(extra or {})
    return fields


def classify_intake(
    ruleset: RuleSet, intake: Intake, extra: Mapping[str, str] | None = None
) -> Decision:
    """`classify` over an intake's fields."""
    return classify(ruleset, intake_fields(intake, extra))
