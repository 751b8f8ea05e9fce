"""Hypothesis strategies for damaged webhook bodies: valid payloads with fields replaced,
dropped or mistyped, then encoded badly (truncated, not UTF-8, NaN, huge numbers, deep)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

# Cheap arbitrary text (one bytes draw) plus values the parsers treat specially.
text = st.one_of(
    st.sampled_from(
        ["", " ", "firing", "resolved", "OK", "PROBLEM", "1", "0", "-1", "4711", "{EVENT.ID}",
         "critical", "High", "disaster", "服务器宕机", "0001-01-01T00:00:00Z",
         "2026-13-45T25:61:00Z", "2026-11-25T08:00:00+08:00", "9999-12-31T23:59:59Z",
         "\x00", "a" * 200, "x" * 5000, "/alerts/0", "https://zabbix.example/?triggerid=1"]
    ),
    st.binary(max_size=60).map(lambda b: b.decode("utf-16-le", errors="replace")),
)  # fmt: skip
scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([2**63, -(2**63) - 1, 10**30, 1e308, -0.0, 0.5]),
    st.floats(allow_nan=True, allow_infinity=True),
    text,
)
json_value = st.recursive(
    scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(text, inner, max_size=4)),
    max_leaves=8,
)
# How hard an example is damaged: a third untouched (the deep paths: tickets, repeats,
# recoveries), the rest with one member in 30, or in 5, replaced or dropped.
RATES = st.sampled_from(
    [
        st.just("keep"),
        st.sampled_from(["keep"] * 28 + ["replace", "drop"]),
        st.sampled_from(["keep"] * 8 + ["replace", "drop"]),
    ]
)


def mutated(draw: st.DrawFn, body: Any) -> Any:
    return _mutated(draw, body, draw(RATES))


def _mutated(draw: st.DrawFn, value: Any, change: st.SearchStrategy[str]) -> Any:
    """`value` with some members replaced by arbitrary JSON, dropped, or recursed into."""
    if isinstance(value, dict):
        out = {}
        for key, member in value.items():
            what = draw(change)
            if what == "drop":
                continue
            out[key] = draw(json_value) if what == "replace" else _mutated(draw, member, change)
        if draw(change) == "replace":
            out[draw(text)] = draw(json_value)
        return out
    if isinstance(value, list):
        items = [_mutated(draw, v, change) for v in value if draw(change) != "drop"]
        if draw(change) == "replace":
            items.append(draw(json_value))
        return items
    return draw(json_value) if draw(change) == "replace" else value


ENCODINGS = st.sampled_from(["json"] * 24 + ["ascii", "gbk", "cut", "deep", "bigint", "junk"])


def encoded(draw: st.DrawFn, body: Any) -> bytes:
    """The body as bytes, sometimes broken the ways senders and proxies break JSON."""
    how = draw(ENCODINGS)
    if how == "deep":  # nesting that exhausts a recursive decoder
        depth = draw(st.sampled_from([100, 1000, 100_000]))
        return b"[" * depth + b"]" * depth
    if how == "bigint":  # past Python's int/str conversion limit (4300 digits)
        return b'{"alerts": [{"fingerprint": ' + b"9" * 5000 + b"}]}"
    if how == "junk":
        return draw(st.binary(max_size=300))
    data = json.dumps(body, ensure_ascii=how == "ascii", allow_nan=True).encode("utf-8", "replace")
    if how == "gbk":
        return json.dumps(body, ensure_ascii=False).encode("gbk", errors="replace")
    if how == "cut":
        return data[: draw(st.integers(0, len(data)))]
    return data


def am_alert(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "status": draw(st.sampled_from(["firing", "resolved"])),
        "labels": {
            "alertname": draw(st.sampled_from(["HighCPU", "DiskFull", "服务器宕机"])),
            "severity": draw(st.sampled_from(["critical", "warning", "info", "P1", ""])),
            "instance": draw(st.sampled_from(["db-01:9100", "10.0.0.5", "", "[::1]:9100"])),
        },
        "annotations": {"summary": draw(text), "description": draw(text)},
        "startsAt": "2026-11-25T08:00:00Z",
        "endsAt": draw(st.sampled_from(["0001-01-01T00:00:00Z", "2026-11-25T09:00:00Z"])),
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": draw(st.sampled_from(["f1", "f2", "f3", "0123456789abcdef"])),
    }


@st.composite
def alertmanager_body(draw: st.DrawFn) -> bytes:
    alerts = [am_alert(draw) for _ in range(draw(st.integers(0, 4)))]
    body = {
        "version": "4",
        "receiver": "ops-gateway",
        "status": draw(st.sampled_from(["firing", "resolved"])),
        "groupKey": '{}:{alertname="HighCPU"}',
        "truncatedAlerts": draw(st.sampled_from([0, 0, 3])),
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": alerts,
    }
    return encoded(draw, mutated(draw, body))


@st.composite
def zabbix_body(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        body: dict[str, Any] = {
            "event_id": draw(st.sampled_from(["4711", "4712", "1", "{EVENT.ID}"])),
            "recovery_event_id": draw(st.sampled_from(["{EVENT.RECOVERY.ID}", "4720", ""])),
            "event_value": draw(st.sampled_from(["1", "0"])),
            "event_update_status": draw(st.sampled_from(["0", "1"])),
            "severity": draw(st.sampled_from(["High", "Disaster", "Warning", "Not classified"])),
            "host": draw(st.sampled_from(["db-01", "web-01", "数据库-01"])),
            "host_ip": "10.0.0.5",
            "trigger_id": "13500",
            "trigger_name": draw(text),
            "tags": [{"tag": "service", "value": "mysql"}],
            "opdata": "Current: 0",
            "url": "https://zabbix.example/tr_events.php?triggerid=13500&eventid=4711",
            "message": draw(text),
            "update_message": draw(text),
        }
    else:  # the flat layout of hand-made media types
        body = {
            "hostname": draw(st.sampled_from(["db-01", "web-01"])),
            "severity": draw(st.sampled_from(["High", "Average"])),
            "status": draw(st.sampled_from(["PROBLEM", "OK", "RESOLVED"])),
            "item": draw(text),
            "trigger": draw(text),
            "link": draw(st.sampled_from(["https://zabbix.example/tr_events.php?triggerid=7", ""])),
        }
    return encoded(draw, mutated(draw, body))


@st.composite
def generic_body(draw: st.DrawFn) -> bytes:
    alerts = [
        {
            "fingerprint": draw(st.sampled_from(["g1", "g2", "g3"])),
            "status": draw(st.sampled_from(["firing", "resolved", "ok", "alerting"])),
            "labels": {"severity": draw(st.sampled_from(["high", "low", ""]))},
            "annotations": {"summary": draw(text)},
        }
        for _ in range(draw(st.integers(0, 3)))
    ]
    return encoded(draw, mutated(draw, {"alerts": alerts}))
