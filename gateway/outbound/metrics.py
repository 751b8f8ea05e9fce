"""Outbound delivery metrics (prometheus_client's default registry, like gateway.metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

SENT = Counter("gateway_outbound_sent_total", "Notifications delivered, by channel.", ["channel"])
FAILED = Counter(
    "gateway_outbound_failed_total",
    "Delivery attempts that failed, by channel and what follows (retry, dead).",
    ["channel", "next"],
)
DEAD = Counter(
    "gateway_outbound_dead_total", "Notifications moved to the dead letters.", ["channel"]
)
SUPPRESSED = Counter(
    "gateway_outbound_suppressed_total",
    "Notifications not sent on their own: automatic trigger, ack limit, held for a digest.",
    ["reason"],
)
QUEUE = Gauge("gateway_outbound_queue_depth", "Outbox rows by state.", ["state"])
