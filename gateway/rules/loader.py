"""Read and validate a rules file; every problem names the line of the YAML node at fault.

The file is walked as a YAML node tree (`yaml.compose`) rather than loaded into plain dicts,
because only nodes remember where they start: "rules.yaml:14: unknown field 'subjet' (did you
mean 'subject'?)" needs the 14.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import yaml

from gateway.intake import Source
from gateway.rules.engine import Keyword, compile_ruleset
from gateway.rules.model import (
    BUILTIN_DEFAULT,
    FIELD_PREFIXES,
    FIELDS,
    PRIORITIES,
    STRATEGIES,
    TICKET_TYPES,
    Actions,
    Condition,
    Group,
    Problem,
    Rule,
    RulesError,
    RuleSet,
)

TOP_KEYS = ("version", "keywords", "groups", "rules", "default")
GROUP_KEYS = ("members", "strategy", "description")
RULE_KEYS = ("name", "description", "enabled", "when", "then")
CONDITION_KEYS = ("fields", "any", "all", "none", "regex", "equals", "source")
ACTION_KEYS = (
    "type",
    "priority",
    "category",
    "group",
    "assignee",
    "tags",
    "sla_policy",
    "approvers",
    "stop",
    "continue",
    "override",
)
DEFAULT_KEYS = ACTION_KEYS[:8]
SOURCES = tuple(s.value for s in Source)
_BOOLS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}

Node = yaml.Node
Items = list[tuple[str, Node, Node]]


def _flatten(node: yaml.SequenceNode) -> list[Node]:
    out: list[Node] = []
    for item in node.value:
        out.extend(_flatten(item) if isinstance(item, yaml.SequenceNode) else [item])
    return out


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class _Reader:
    """Turns YAML nodes into model values, collecting problems instead of stopping at one."""

    def __init__(self, filename: str, known_groups: Iterable[str]) -> None:
        self.filename = filename
        self.problems: list[Problem] = []
        self.groups: set[str] = set(known_groups)

    def fail(self, node: Node | None, reason: str) -> None:
        line = node.start_mark.line + 1 if node is not None else None
        self.problems.append(Problem(self.filename, line, reason))

    def items(self, node: Node, what: str, allowed: tuple[str, ...]) -> Items | None:
        if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null"):
            return []
        if not isinstance(node, yaml.MappingNode):
            self.fail(node, f"{what} must be a mapping")
            return None
        out: Items = []
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                self.fail(key_node, f"duplicate key '{key}' in {what} (first at line {seen[key]})")
                continue
            seen[key] = key_node.start_mark.line + 1
            if allowed and key not in allowed:
                self.fail(key_node, f"unknown key '{key}' in {what}{_suggest(key, allowed)}")
                continue
            out.append((key, key_node, value_node))
        return out

    def string(self, node: Node, what: str) -> str | None:
        if not isinstance(node, yaml.ScalarNode) or node.tag.endswith(":null"):
            self.fail(node, f"{what} must be a single value")
            return None
        value = str(node.value).strip()
        if not value:
            self.fail(node, f"{what} is empty")
            return None
        return value

    def entries(self, node: Node, what: str) -> list[tuple[Node, str]]:
        """A scalar or a list of scalars, each with its node so problems name its own line.

        An empty list is a problem (it would never match). Nested lists are flattened, so
        named lists can be combined: `any: [*faults, *slow]`.
        """
        nodes = _flatten(node) if isinstance(node, yaml.SequenceNode) else [node]
        if isinstance(node, yaml.MappingNode) or not nodes:
            self.fail(node, f"{what} must be a value or a non-empty list of values")
            return []
        out = [(n, self.string(n, f"an entry of {what}")) for n in nodes]
        return [(n, v) for n, v in out if v is not None]

    def strings(self, node: Node, what: str) -> tuple[str, ...]:
        return tuple(v for _, v in self.entries(node, what))

    def boolean(self, node: Node, what: str) -> bool | None:
        value = _BOOLS.get(str(node.value).lower()) if isinstance(node, yaml.ScalarNode) else None
        if value is None:
            self.fail(node, f"{what} must be true or false")
        return value

    def choice(self, node: Node, what: str, choices: tuple[str, ...]) -> str | None:
        value = self.string(node, what)
        if value is None:
            return None
        for choice in choices:  # "p1" and "Incident" are meant kindly; accept them
            if value.casefold() == choice.casefold():
                return choice
        listed = ", ".join(choices)
        self.fail(node, f"unknown {what} '{value}'{_suggest(value, choices)}; one of: {listed}")
        return None

    def group_name(self, node: Node, what: str) -> str | None:
        value = self.string(node, what)
        if value is not None and value not in self.groups:
            hint = _suggest(value, self.groups) or " (declare it under `groups:`)"
            self.fail(node, f"unknown group '{value}'{hint}")
            return None
        return value

    # --- sections --------------------------------------------------------------------------

    def read_keywords(self, node: Node) -> None:
        """`keywords:` holds named lists for YAML aliases (`&faults` ... `*faults`); the rules
        that use them are what matters, but a bad entry is still reported where it is."""
        for name, _, value in self.items(node, "keywords", ()) or []:
            for entry, word in self.entries(value, f"keyword list '{name}'"):
                self.check_entry("any", entry, word)

    def read_groups(self, node: Node) -> dict[str, Group]:
        groups: dict[str, Group] = {}
        for name, _, value in self.items(node, "groups", ()) or []:
            fields = {k: v for k, _, v in self.items(value, f"group '{name}'", GROUP_KEYS) or []}
            members: tuple[str, ...] = ()
            node_m = fields.get("members")
            # An empty member list is allowed: the group is then a queue.
            if node_m is not None and not (
                isinstance(node_m, yaml.SequenceNode) and not node_m.value
            ):
                members = self.strings(node_m, "members")
            strategy = "none"
            if "strategy" in fields:
                strategy = self.choice(fields["strategy"], "strategy", STRATEGIES) or "none"
            groups[name] = Group(name, members, strategy)  # type: ignore[arg-type]
            self.groups.add(name)
        return groups

    def read_actions(self, node: Node, what: str, allowed: tuple[str, ...]) -> Actions | None:
        items = self.items(node, what, allowed)
        if items is None:
            return None
        values: dict[str, object] = {}
        stop: bool | None = None
        for key, key_node, value in items:
            if key == "type":
                values[key] = self.choice(value, "type", TICKET_TYPES)
            elif key == "priority":
                values[key] = self.choice(value, "priority", PRIORITIES)
            elif key == "group":
                values[key] = self.group_name(value, "group")
            elif key in ("tags", "approvers"):
                values[key] = self.strings(value, key)
            elif key in ("stop", "continue"):
                flag = self.boolean(value, key)
                if flag is None:
                    continue
                wanted = flag if key == "stop" else not flag
                if stop is not None and stop != wanted:
                    self.fail(key_node, "`stop` and `continue` contradict each other")
                stop = wanted
            elif key == "override":
                values[key] = bool(self.boolean(value, key))
            else:
                values[key] = self.string(value, key)
        return Actions(**values, stop=True if stop is None else stop)  # type: ignore[arg-type]

    def read_condition(self, node: Node, rule: str) -> Condition | None:
        items = self.items(node, f"the conditions of rule '{rule}'", CONDITION_KEYS)
        if items is None:
            return None
        if not items:
            self.fail(node, f"rule '{rule}' has an empty condition")
            return None
        values: dict[str, tuple[str, ...]] = {}
        before = len(self.problems)
        for key, _, value in items:
            entries = self.entries(value, key)
            for entry, text in entries:
                self.check_entry(key, entry, text)
            values[key] = tuple(text for _, text in entries)
        if len(self.problems) > before:
            return None
        condition = Condition(**values)
        if condition.is_empty():
            self.fail(node, f"rule '{rule}' has a condition that tests nothing (only `fields`)")
            return None
        return condition

    def check_entry(self, key: str, node: Node, text: str) -> None:
        """One entry of a condition list: a field name, keyword, regex or source."""
        if key == "fields":
            prefixed = any(text.startswith(p) and len(text) > len(p) for p in FIELD_PREFIXES)
            if text not in FIELDS and not prefixed:
                choices = (*FIELDS, "labels.<name>", "annotations.<name>", "cmdb.<attr>")
                self.fail(node, f"unknown field '{text}'{_suggest(text, choices)}")
        elif key in ("any", "all", "none") and not Keyword.parse(text).key:
            self.fail(node, f"keyword '{text}' is empty once spaces and '*' are removed")
        elif key == "regex":
            try:
                compiled = re.compile(text, re.IGNORECASE)
            except re.error as exc:
                self.fail(node, f"bad regex '{text}': {exc.msg} at position {exc.pos}")
                return
            if compiled.search(""):
                self.fail(node, f"regex '{text}' matches empty text, so it matches everything")
        elif key == "source" and text.casefold() not in SOURCES:
            self.fail(node, f"unknown source '{text}'{_suggest(text, SOURCES)}")

    def read_rule(self, node: Node, names: dict[str, int]) -> tuple[Rule | None, bool]:
        items = self.items(node, "a rule", RULE_KEYS)
        if items is None:
            return None, False
        fields = {k: (kn, v) for k, kn, v in items}
        name = self.string(fields["name"][1], "name") if "name" in fields else None
        if "name" not in fields:
            self.fail(node, "rule without a `name`")
        elif name is not None:
            if name in names:
                where = f"first at line {names[name]}"
                self.fail(fields["name"][1], f"duplicate rule name '{name}' ({where})")
            names.setdefault(name, node.start_mark.line + 1)
        label = name or "?"
        conditions: list[Condition] = []
        if "when" not in fields:
            self.fail(node, f"rule '{label}' has no `when:`; a catch-all belongs in `default:`")
        else:
            when = fields["when"][1]
            blocks = when.value if isinstance(when, yaml.SequenceNode) else [when]
            if not blocks:
                self.fail(when, f"rule '{label}' has an empty `when:` list")
            for block in blocks:
                condition = self.read_condition(block, label)
                if condition is not None:
                    conditions.append(condition)
        actions = None
        if "then" not in fields:
            self.fail(node, f"rule '{label}' has no `then:`")
        else:
            what = f"the actions of rule '{label}'"
            actions = self.read_actions(fields["then"][1], what, ACTION_KEYS)
        enabled = True
        if "enabled" in fields:
            enabled = bool(self.boolean(fields["enabled"][1], "enabled"))
        description = ""
        if "description" in fields:
            description = self.string(fields["description"][1], "description") or ""
        if name is None or actions is None or not conditions:
            return None, enabled
        line = node.start_mark.line + 1
        return Rule(name, tuple(conditions), actions, description, line), enabled


def _compose(text: str, reader: _Reader) -> Node | None:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        reason = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        reader.problems.append(Problem(reader.filename, line, f"YAML syntax: {reason}"))
    except yaml.YAMLError as exc:
        reader.problems.append(Problem(reader.filename, None, f"YAML: {exc}"))
    return None


def _read(text: str, filename: str, known_groups: Iterable[str]) -> RuleSet:
    reader = _Reader(filename, known_groups)
    root = _compose(text, reader)
    if reader.problems:
        raise RulesError(reader.problems)
    top = {k: v for k, _, v in reader.items(root, "the rules file", TOP_KEYS) or []} if root else {}
    if "version" in top and str(top["version"].value) != "1":
        reader.fail(top["version"], f"unsupported version '{top['version'].value}' (expected 1)")
    if "keywords" in top:
        reader.read_keywords(top["keywords"])
    # Groups first: rules refer to them.
    groups = reader.read_groups(top["groups"]) if "groups" in top else {}
    default = BUILTIN_DEFAULT
    if "default" in top:
        actions = reader.read_actions(top["default"], "default", DEFAULT_KEYS)
        if actions is not None:
            # The default must decide type and priority, whatever the file leaves out.
            default = replace(
                actions,
                type=actions.type or BUILTIN_DEFAULT.type,
                priority=actions.priority or BUILTIN_DEFAULT.priority,
            )
    rules: list[Rule] = []
    if "rules" in top:
        node = top["rules"]
        if not isinstance(node, yaml.SequenceNode):
            reader.fail(node, "`rules` must be a list of rules")
        else:
            names: dict[str, int] = {}
            for rule_node in node.value:
                rule, enabled = reader.read_rule(rule_node, names)
                if rule is not None and enabled:
                    rules.append(rule)
    if reader.problems:
        # An aliased list (`*faults`) is one node reached twice: report its problems once.
        # Sorted by line so the output reads like the file.
        unique = dict.fromkeys(reader.problems)
        raise RulesError(sorted(unique, key=lambda p: p.line or 0))
    return compile_ruleset(rules, default, groups, filename)


def parse_rules(text: str, filename: str = "<rules>", known_groups: Iterable[str] = ()) -> RuleSet:
    """Validate and compile rules from YAML text; raises RulesError listing every problem."""
    return _read(text, filename, known_groups)


def load_rules(path: str | Path, known_groups: Iterable[str] = ()) -> RuleSet:
    """Validate and compile a rules file; raises RulesError (also for an unreadable file)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise RulesError([Problem(str(path), None, f"cannot read: {reason}")]) from exc
    return parse_rules(text, str(path), known_groups)


def check_rules(path: str | Path, known_groups: Iterable[str] = ()) -> list[Problem]:
    """Every problem in a rules file (empty list: the file is usable)."""
    try:
        load_rules(path, known_groups)
    except RulesError as exc:
        return exc.problems
    return []


__all__ = ["check_rules", "load_rules", "parse_rules"]
