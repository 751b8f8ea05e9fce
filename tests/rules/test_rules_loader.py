"""check_rules / load_rules: every problem prints as `file:line: reason`, with the right line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gateway.rules.loader import check_rules, load_rules, parse_rules
from gateway.rules.model import Group, RulesError

DEFAULT_RULES = Path(__file__).resolve().parents[2] / "gateway" / "defaults" / "rules.yaml"


def problems(tmp_path: Path, text: str, known_groups: tuple[str, ...] = ()) -> list[str]:
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return [str(p).replace(f"{tmp_path}/", "") for p in check_rules(path, known_groups)]


def test_default_rules_file_is_valid() -> None:
    assert check_rules(DEFAULT_RULES) == []
    ruleset = load_rules(DEFAULT_RULES)
    assert len(ruleset.rules) > 20
    assert ruleset.groups["dba"] == Group("dba", (), "least_open")
    assert ruleset.default.group == "service-desk"


def test_unknown_condition_field_with_suggestion(tmp_path: Path) -> None:
    out = problems(
        tmp_path,
        """
        rules:
          - name: a
            when:
              fields: [subjet]
              any: [down]
            then: {type: incident}
        """,
    )
    assert out == ["rules.yaml:4: unknown field 'subjet' (did you mean 'subject'?)"]


def test_unknown_keys_everywhere(tmp_path: Path) -> None:
    out = problems(
        tmp_path,
        """
        rulez: []
        rules:
          - name: a
            wen: {any: [x]}
            when: {anyy: [x], any: [y]}
            then: {type: incident, prority: P1}
        """,
    )
    assert out == [
        "rules.yaml:1: unknown key 'rulez' in the rules file (did you mean 'rules'?)",
        "rules.yaml:4: unknown key 'wen' in a rule (did you mean 'when'?)",
        "rules.yaml:5: unknown key 'anyy' in the conditions of rule 'a' (did you mean 'any'?)",
        "rules.yaml:6: unknown key 'prority' in the actions of rule 'a' (did you mean 'priority'?)",
    ]


def test_bad_regex(tmp_path: Path) -> None:
    out = problems(
        tmp_path,
        """
        rules:
          - name: a
            when:
              regex:
                - 'ok\\d+'
                - 'broken(['
            then: {type: incident}
          - name: b
            when: {regex: 'x*'}
            then: {type: incident}
        """,
    )
    assert out == [
        "rules.yaml:6: bad regex 'broken([': unterminated character set at position 7",
        "rules.yaml:9: regex 'x*' matches empty text, so it matches everything",
    ]


def test_unknown_group(tmp_path: Path) -> None:
    text = """
        groups:
          dba: {members: [a@x], strategy: least_open}
        rules:
          - name: a
            when: {any: [mysql]}
            then: {group: dbb}
          - name: b
            when: {any: [vpn]}
            then: {group: network}
        default: {group: helpdesk}
        """
    assert problems(tmp_path, text) == [
        "rules.yaml:6: unknown group 'dbb' (did you mean 'dba'?)",
        "rules.yaml:9: unknown group 'network' (declare it under `groups:`)",
        "rules.yaml:10: unknown group 'helpdesk' (declare it under `groups:`)",
    ]
    # Groups known elsewhere (passed in) count as declared.
    assert problems(tmp_path, text, ("network", "helpdesk")) == [
        "rules.yaml:6: unknown group 'dbb' (did you mean 'dba'?)",
    ]


def test_duplicate_rule_name(tmp_path: Path) -> None:
    out = problems(
        tmp_path,
        """
        rules:
          - name: db
            when: {any: [mysql]}
            then: {type: incident}
          - name: db
            when: {any: [oracle]}
            then: {type: incident}
        """,
    )
    assert out == ["rules.yaml:5: duplicate rule name 'db' (first at line 2)"]


def test_bad_values(tmp_path: Path) -> None:
    out = problems(
        tmp_path,
        """
        groups:
          ops: {strategy: random}
        rules:
          - name: a
            when: {any: [x], source: [zabix]}
            then: {type: incidnet, priority: P5, stop: maybe}
        """,
    )
    assert out == [
        "rules.yaml:2: unknown strategy 'random'; one of: round_robin, least_open, none",
        "rules.yaml:5: unknown source 'zabix' (did you mean 'zabbix'?)",
        "rules.yaml:6: unknown type 'incidnet' (did you mean 'incident'?); "
        "one of: incident, change, request, inspection",
        "rules.yaml:6: unknown priority 'P5'; one of: P0, P1, P2, P3",
        "rules.yaml:6: stop must be true or false",
    ]


def test_lenient_case_for_type_and_priority() -> None:
    rs = parse_rules("rules: [{name: a, when: {any: [x]}, then: {type: Incident, priority: p1}}]")
    assert (rs.rules[0].actions.type, rs.rules[0].actions.priority) == ("incident", "P1")


def test_empty_conditions(tmp_path: Path) -> None:
    out = problems(
        tmp_path,
        """
        rules:
          - name: no-when
            then: {type: incident}
          - name: empty-block
            when: {}
            then: {type: incident}
          - name: only-fields
            when: {fields: [subject]}
            then: {type: incident}
          - name: empty-list
            when: {any: []}
            then: {type: incident}
          - name: no-then
            when: {any: [x]}
        """,
    )
    assert out == [
        "rules.yaml:2: rule 'no-when' has no `when:`; a catch-all belongs in `default:`",
        "rules.yaml:5: rule 'empty-block' has an empty condition",
        "rules.yaml:8: rule 'only-fields' has a condition that tests nothing (only `fields`)",
        "rules.yaml:11: any must be a value or a non-empty list of values",
        "rules.yaml:13: rule 'no-then' has no `then:`",
    ]


def test_stop_and_continue_contradict(tmp_path: Path) -> None:
    out = problems(
        tmp_path,
        """
        rules:
          - name: a
            when: {any: [x]}
            then:
              stop: true
              continue: true
        """,
    )
    assert out == ["rules.yaml:6: `stop` and `continue` contradict each other"]


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    out = problems(
        tmp_path,
        """
        rules:
          - name: a
            when: {any: [x]
            then: {type: incident}
        """,
    )
    assert len(out) == 1 and out[0].startswith("rules.yaml:4: YAML syntax:")


def test_duplicate_yaml_key(tmp_path: Path) -> None:
    out = problems(
        tmp_path,
        """
        rules:
          - name: a
            when: {any: [x]}
            then: {type: incident}
            then: {type: change}
        """,
    )
    assert out == ["rules.yaml:5: duplicate key 'then' in a rule (first at line 4)"]


def test_unreadable_file(tmp_path: Path) -> None:
    out = check_rules(tmp_path / "missing.yaml")
    assert [p.line for p in out] == [None]
    assert str(out[0]).endswith("missing.yaml: cannot read: No such file or directory")


def test_empty_file_is_valid_and_classifies_by_default() -> None:
    rs = parse_rules("# nothing yet\n")
    assert rs.rules == () and rs.default.type == "request"


def test_disabled_rule_is_validated_but_skipped(tmp_path: Path) -> None:
    rs = parse_rules(
        "rules:\n"
        "  - {name: off, enabled: false, when: {any: [x]}, then: {type: incident}}\n"
        "  - {name: on, when: {any: [x]}, then: {type: change}}\n"
    )
    assert [r.name for r in rs.rules] == ["on"]
    out = problems(
        tmp_path,
        "rules:\n  - {name: off, enabled: false, when: {any: [x]}, then: {type: bogus}}\n",
    )
    assert len(out) == 1 and out[0].startswith("rules.yaml:2: unknown type 'bogus'")


def test_named_keyword_lists_and_flattening() -> None:
    rs = parse_rules(
        textwrap.dedent("""
        keywords:
          faults: &faults [宕机, down]
          db: &db [mysql]
        rules:
          - name: db-fault
            when: {any: [*faults, *db, 异常]}
            then: {type: incident}
        """)
    )
    assert rs.rules[0].conditions[0].any == ("宕机", "down", "mysql", "异常")


def test_problem_in_an_aliased_list_is_reported_once(tmp_path: Path) -> None:
    out = problems(
        tmp_path,
        """
        keywords:
          bad: &bad ["*", ok]
        rules:
          - {name: a, when: {any: *bad}, then: {type: incident}}
          - {name: b, when: {all: *bad}, then: {type: incident}}
        """,
    )
    assert out == ["rules.yaml:2: keyword '*' is empty once spaces and '*' are removed"]


def test_rules_error_lists_every_problem() -> None:
    with pytest.raises(RulesError) as info:
        parse_rules(
            "rules:\n  - {name: a, when: {any: [x]}, then: {type: t1, priority: p9}}\n", "f"
        )
    assert [p.line for p in info.value.problems] == [2, 2]
    assert str(info.value).count("f:2:") == 2
