"""SLA metrics (prometheus_client's default registry, like gateway/metrics.py)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

BREACHES = Counter(
    "gateway_sla_breaches_total",
    "Tickets whose SLA was breached, by policy and the target breached first.",
    ["policy", "target"],
)
ESCALATIONS = Counter(
    "gateway_sla_escalations_total",
    "Escalation levels fired, by policy, level and event (sla_warning, sla_breach).",
    ["policy", "level", "event"],
)
AT_RISK = Gauge(
    "gateway_sla_tickets_at_risk",
    "Open tickets, not yet breached, with an unmet due time within [sla] at_risk_minutes.",
)
SCAN_SECONDS = Gauge("gateway_sla_scan_seconds", "Duration of the last SLA scanner pass.")
