"""Rules metrics, on prometheus_client's default registry like gateway.metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

RULES_VERSION = Gauge(
    "gateway_rules_version",
    "Version of the rules in force: 1 after start-up, +1 per accepted reload.",
)
RULES_RELOADS = Counter(
    "gateway_rules_reloads_total",
    "Rules reload attempts by outcome: ok (new rules in force) or refused (old rules kept).",
    ["outcome"],
)
RULE_MATCHES = Counter(
    "gateway_rule_matches_total",
    "Classifications each rule contributed to ('default' when no rule matched).",
    ["rule"],
)
