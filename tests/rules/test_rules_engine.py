"""Classification: every condition and action, ordering, folding and the explanation (pure)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.intake import Intake, Source
from gateway.rules.engine import classify, classify_intake, intake_fields
from gateway.rules.loader import load_rules, parse_rules
from gateway.rules.model import Decision, RuleSet
from gateway.rules.text import normalise

DEFAULT_RULES = Path(__file__).resolve().parents[2] / "gateway" / "defaults" / "rules.yaml"
GROUPS = """
groups:
  ops: {strategy: least_open, members: [a@x, b@x]}
  dba: {}
  beijing-ops: {strategy: round_robin, members: [c@x]}
  service-desk: {}
"""


def rules(body: str, default: str = "") -> RuleSet:
    text = GROUPS + "rules:\n" + textwrap.indent(textwrap.dedent(body), "  ") + default
    return parse_rules(text, "test.yaml")


def decide(ruleset: RuleSet, subject: str = "", body: str = "", **extra: str) -> Decision:
    return classify(ruleset, {"subject": subject, "body": body, **extra})


# --- conditions ------------------------------------------------------------------------------


def test_any_matches_one_of_the_keywords() -> None:
    rs = rules("""
        - name: down
          when: {any: [宕机, server down]}
          then: {type: incident, priority: P0}
    """)
    assert decide(rs, "web01 服务器宕机").rule == "down"
    assert decide(rs, "", "our server down since 9").priority == "P0"
    assert decide(rs, "all good").rule == "default"


def test_all_needs_every_keyword_across_fields() -> None:
    rs = rules("""
        - name: db-timeout
          when: {all: [数据库, 超时]}
          then: {type: incident, priority: P1}
    """)
    assert decide(rs, "数据库", "连接超时").rule == "db-timeout"  # one in each field
    assert decide(rs, "数据库很好").rule == "default"


def test_none_vetoes_the_rule() -> None:
    rs = rules("""
        - name: fault
          when: {any: [报错], none: [测试环境]}
          then: {type: incident}
    """)
    assert decide(rs, "接口报错").rule == "fault"
    assert decide(rs, "测试环境接口报错").rule == "default"


def test_none_only_rule_is_evaluated_without_any_hit() -> None:
    rs = rules("""
        - name: not-spam
          when: {none: [unsubscribe]}
          then: {tags: [clean]}
    """)
    assert decide(rs, "hello").tags == ("clean",)
    assert decide(rs, "click to unsubscribe").tags == ()


def test_regex_is_case_insensitive_and_reports_the_match() -> None:
    rs = rules(r"""
        - name: oracle
          when: {regex: ['ora-\d{5}']}
          then: {type: incident, category: database}
    """)
    d = decide(rs, "insert failed: ORA-01653 unable to extend")
    assert d.rule == "oracle"
    assert d.matches[0].kind == "regex"
    assert d.matches[0].keyword_or_pattern == r"ora-\d{5}"
    assert d.matches[0].matched_text == "ora-01653"
    assert decide(rs, "ORA-1 is not five digits").rule == "default"


def test_equals_compares_the_whole_value() -> None:
    rs = rules("""
        - name: critical
          when: {fields: [severity], equals: [critical]}
          then: {priority: P0}
    """)
    assert decide(rs, severity="CRITICAL").priority == "P0"
    assert decide(rs, severity="not critical").priority == "P3"


def test_source_filter() -> None:
    rs = rules("""
        - name: zabbix-only
          when: {source: [zabbix], any: [down]}
          then: {type: incident}
    """)
    assert decide(rs, "host down", source="zabbix").rule == "zabbix-only"
    assert decide(rs, "host down", source="smtp").rule == "default"


def test_fields_limit_where_keywords_are_looked_for() -> None:
    rs = rules("""
        - name: subject-only
          when: {fields: [subject], any: [urgent]}
          then: {priority: P1}
        - name: by-sender
          when: {fields: [sender], any: [zabbix@example.com]}
          then: {type: incident}
    """)
    assert decide(rs, "urgent: disk").rule == "subject-only"
    assert decide(rs, "disk", "urgent").rule == "default"
    assert decide(rs, "x", sender="Zabbix <zabbix@example.com>").rule == "by-sender"


def test_label_and_cmdb_fields() -> None:
    rs = rules("""
        - name: bj-site
          when: {fields: [cmdb.site], equals: [beijing]}
          then: {group: beijing-ops}
        - name: team-db
          when: {fields: [labels.team], any: [dba]}
          then: {group: dba}
    """)
    assert decide(rs, **{"cmdb.site": "Beijing"}).group == "beijing-ops"
    assert decide(rs, **{"labels.team": "dba"}).group == "dba"


def test_condition_list_means_and() -> None:
    rs = rules("""
        - name: nonprod-fault
          when:
            - any: [测试环境, staging]
            - any: [报错, error]
          then: {type: incident, priority: P2}
    """)
    assert decide(rs, "staging error").rule == "nonprod-fault"
    assert decide(rs, "staging deploy").rule == "default"
    assert decide(rs, "production error").rule == "default"


# --- matching: folding, CJK, word boundaries -------------------------------------------------


def test_full_width_and_case_folding() -> None:
    rs = rules("""
        - name: down
          when: {any: [server down]}
          then: {type: incident, priority: P0}
    """)
    d = decide(rs, "Ｓｅｒｖｅｒ　ＤＯＷＮ")
    assert (d.rule, d.priority) == ("down", "P0")
    assert d.matches[0].matched_text == "server down"


def test_chinese_without_segmentation() -> None:
    rs = rules("""
        - name: p0
          when: {any: [服务器宕机]}
          then: {type: incident, priority: P0}
    """)
    assert decide(rs, "紧急", "今天早上web01服务器宕机了，请处理").priority == "P0"


def test_spaces_next_to_chinese_do_not_matter() -> None:
    rs = rules("""
        - name: bug
          when: {any: [应用 BUG]}
          then: {type: incident}
    """)
    for text in ("应用BUG", "应用 bug", "应用　ｂｕｇ", "应用\n Bug"):
        assert decide(rs, text).rule == "bug", text


def test_english_keywords_match_whole_words_unless_starred() -> None:
    rs = rules("""
        - name: bug
          when: {any: [bug]}
          then: {tags: [bug], continue: true}
        - name: upgrade
          when: {any: ["upgrad*"]}
          then: {tags: [upgrade], continue: true}
        - name: code
          when: {any: ["500"]}
          then: {tags: [http-500]}
    """)
    assert decide(rs, "found a bug.").tags == ("bug",)
    assert decide(rs, "debug logging").tags == ()
    d = decide(rs, "upgrading nginx")
    assert d.tags == ("upgrade",)
    assert d.matches[0].matched_text == "upgrading"  # the whole word, for the explanation
    assert decide(rs, "limit 5000 qps").tags == ()
    assert decide(rs, "HTTP 500!").tags == ("http-500",)


@given(st.text(alphabet="宕机服务器网络中断数据库异常变更巡检 ", max_size=30))
def test_cjk_keyword_matches_exactly_when_contained(text: str) -> None:
    rs = rules("""
        - name: hit
          when: {any: [宕机, 网络中断, 数据库异常]}
          then: {type: incident}
    """)
    expected = any(k in normalise(text) for k in ("宕机", "网络中断", "数据库异常"))
    assert (decide(rs, text).rule == "hit") == expected


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz ", max_size=40))
def test_full_width_input_decides_like_half_width(text: str) -> None:
    rs = rules("""
        - name: hit
          when: {any: [server down, db, outage]}
          then: {type: incident}
    """)
    wide = "".join(chr(ord(c) + 0xFEE0) if c != " " else "\u3000" for c in text.upper())
    assert decide(rs, wide).rule == decide(rs, text).rule


# --- actions, ordering, stop / continue / override, default ----------------------------------


def test_every_action_is_applied() -> None:
    rs = rules("""
        - name: all-actions
          when: {any: [扩容]}
          then:
            type: change
            priority: P1
            category: capacity
            group: ops
            assignee: a@x
            tags: [scale, prod]
            sla_policy: change-std
            approvers: [mgr@x, sec@x]
    """)
    d = decide(rs, "生产扩容")
    assert (d.type, d.priority, d.category, d.group, d.assignee) == (
        "change",
        "P1",
        "capacity",
        "ops",
        "a@x",
    )
    assert d.tags == ("scale", "prod")
    assert d.sla_policy == "change-std"
    assert d.approvers == ("mgr@x", "sec@x")


def test_first_match_wins_by_default() -> None:
    rs = rules("""
        - name: first
          when: {any: [down]}
          then: {type: incident, priority: P0}
        - name: second
          when: {any: [down]}
          then: {type: incident, priority: P2, tags: [never]}
    """)
    d = decide(rs, "down")
    assert (d.rule, d.rules, d.priority, d.tags) == ("first", ("first",), "P0", ())


def test_continue_fills_in_and_first_value_is_kept() -> None:
    rs = rules("""
        - name: region
          when: {any: [北京机房]}
          then: {group: beijing-ops, tags: [bj], continue: true}
        - name: fault
          when: {any: [宕机]}
          then: {type: incident, priority: P0, group: ops, tags: [fault]}
    """)
    d = decide(rs, "北京机房服务器宕机")
    assert d.group == "beijing-ops"  # the region rule came first and keeps the group
    assert (d.type, d.priority) == ("incident", "P0")
    assert d.tags == ("bj", "fault")
    assert (d.rule, d.rules) == ("fault", ("region", "fault"))


def test_stop_false_is_continue() -> None:
    rs = rules("""
        - name: tagger
          when: {any: [vpn]}
          then: {tags: [vpn], stop: false}
        - name: fault
          when: {any: [down]}
          then: {type: incident}
    """)
    assert decide(rs, "vpn down").rules == ("tagger", "fault")


def test_override_replaces_earlier_values() -> None:
    rs = rules("""
        - name: guess
          when: {any: [slow]}
          then: {priority: P2, continue: true}
        - name: vip
          when: {any: [ceo]}
          then: {priority: P1, override: true}
    """)
    assert decide(rs, "ceo laptop slow").priority == "P1"
    assert decide(rs, "laptop slow").priority == "P2"


def test_rule_order_not_keyword_order_decides() -> None:
    rs = rules("""
        - name: change
          when: {any: [变更]}
          then: {type: change}
        - name: fault
          when: {any: [报错]}
          then: {type: incident}
    """)
    # "报错" comes first in the text, but the change rule comes first in the file.
    assert decide(rs, "报错后申请变更").rule == "change"


def test_default_fills_what_rules_left_unset() -> None:
    rs = rules(
        """
        - name: region
          when: {any: [北京机房]}
          then: {group: beijing-ops, continue: true}
        """,
        "default: {type: request, priority: P3, group: service-desk, tags: [triage]}\n",
    )
    d = decide(rs, "北京机房 新账号")
    assert (d.type, d.priority, d.group) == ("request", "P3", "beijing-ops")
    assert d.tags == ("triage",)
    nothing = decide(rs, "hello")
    assert (nothing.rule, nothing.rules, nothing.group, nothing.matches) == (
        "default",
        ("default",),
        "service-desk",
        (),
    )


def test_without_default_block_request_p3() -> None:
    d = decide(parse_rules("rules: []"), "anything")
    assert (d.type, d.priority, d.group) == ("request", "P3", None)


# --- explanation -----------------------------------------------------------------------------


def test_explanation_names_rule_field_keyword_and_text() -> None:
    rs = rules("""
        - name: db
          when: {any: [数据库异常, mysql]}
          then: {type: incident, priority: P1, continue: true}
        - name: urgent
          when: {fields: [subject], any: [紧急]}
          then: {priority: P0, override: true}
    """)
    d = decide(rs, "【紧急】MySQL 报错", "生产数据库异常")
    found = {(m.rule, m.field, m.keyword_or_pattern, m.matched_text) for m in d.matches}
    assert found == {
        ("db", "body", "数据库异常", "数据库异常"),
        ("db", "subject", "mysql", "mysql"),
        ("urgent", "subject", "紧急", "紧急"),
    }
    out = d.to_dict()
    assert {"type", "priority", "category", "group", "rule", "matches"} <= set(out)
    assert out["rule"] == "urgent" and out["rules"] == ["db", "urgent"]
    assert {"rule": "db", "field": "body", "kind": "keyword", "keyword": "数据库异常"}.items() <= (
        out["matches"][0].items() | out["matches"][1].items()
    )


def test_classify_intake_builds_fields() -> None:
    intake = Intake(
        source=Source.ALERTMANAGER,
        sender="am@example.com",
        subject="[FIRING:1] InstanceDown",
        body="node down",
        recipients=("ops@example.com",),
        labels={"severity": "critical", "team": "dba"},
    )
    fields = intake_fields(intake, {"cmdb.site": "beijing"})
    assert fields["source"] == "alertmanager"
    assert fields["severity"] == "critical"
    assert fields["labels.team"] == "dba"
    assert fields["recipient"] == "ops@example.com"
    assert fields["cmdb.site"] == "beijing"
    rs = rules("""
        - name: crit
          when: {source: [alertmanager], fields: [severity], equals: [critical]}
          then: {type: incident, priority: P0}
    """)
    d = classify_intake(rs, intake)
    assert (d.rule, d.priority) == ("crit", "P0")
    assert [m.kind for m in d.matches] == ["source", "equals"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("服务器宕机", ("incident", "P0")),
        ("Ｓｅｒｖｅｒ　ＤＯＷＮ", ("incident", "P0")),
        ("北京机房网络中断", ("incident", "P0")),
        ("申请新账号", ("request", "P3")),
        ("本周服务器巡检", ("inspection", "P3")),
        ("订单服务扩容", ("change", "P2")),
    ],
)
def test_default_rules_examples_from_the_brief(text: str, expected: tuple[str, str]) -> None:
    d = decide(load_rules(DEFAULT_RULES), text)
    assert (d.type, d.priority) == expected
    if "北京机房" in text:
        assert d.group == "beijing-ops"


def test_many_chinese_keywords_and_odd_text() -> None:
    # Thousands of distinct first characters (the automaton runs over UTF-8 bytes) and text
    # with a lone surrogate, as a badly encoded mail can produce.
    words = [chr(0x4E00 + i) + chr(0x4E00 + (i * 7) % 3000) + "机" for i in range(3000)]
    body = "\n".join(
        f"  - {{name: r{i}, when: {{any: [{w}]}}, then: {{tags: [t{i}]}}}}"
        for i, w in enumerate(words)
    )
    rs = parse_rules("rules:\n" + body + "\n")
    d = decide(rs, "前缀" + words[2999] + "\udcff后缀")
    assert (d.rule, d.matches[0].matched_text) == ("r2999", words[2999])


def test_decision_is_json_ready() -> None:
    import json

    rs = rules("""
        - name: a
          when: {any: [宕机]}
          then: {type: incident, tags: [x], approvers: [m@x]}
    """)
    assert json.loads(json.dumps(decide(rs, "宕机").to_dict(), ensure_ascii=False))["tags"] == ["x"]


def test_evidence_is_exact_and_not_repeated() -> None:
    rs = rules("""
        - name: a
          when:
            - any: [数据库, root 权限]
            - any: [root 权限]
          then: {type: change}
    """)
    d = decide(rs, "申请生产数据库 root 权限")
    assert [(m.keyword_or_pattern, m.matched_text) for m in d.matches] == [
        ("数据库", "数据库"),
        ("root 权限", "root权限"),
    ]
