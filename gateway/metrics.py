"""Process-wide Prometheus metrics (one registry: prometheus_client's default)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

INTAKE = Counter(
    "gateway_intake_total",
    "Intakes processed, by source and outcome (created, updated, duplicate, quarantined, "
    "refused, unavailable).",
    ["source", "outcome"],
)
TICKETS_CREATED = Counter(
    "gateway_tickets_created_total", "Tickets created, by type and priority.", ["type", "priority"]
)
PIPELINE_SECONDS = Histogram(
    "gateway_pipeline_seconds",
    "Time from an intake entering the pipeline to its commit.",
    ["source"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
SMTP_SESSIONS = Gauge("gateway_smtp_inflight_messages", "SMTP messages being stored right now.")
READY = Gauge("gateway_ready", "1 when the database is reachable and intake is accepting.")
LOOP_LAG = Histogram(
    "gateway_event_loop_lag_seconds",
    "How late a 100 ms timer fires on the daemon's event loop (blocking work shows up here).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
LOOP_LAG_MAX = Gauge("gateway_event_loop_lag_max_seconds", "Largest event-loop lag seen.")
BATCH_SIZE = Histogram(
    "gateway_group_commit_batch_size",
    "Intakes stored per transaction by the group-commit writer.",
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
