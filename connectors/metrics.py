"""Connector metrics, on prometheus_client's default registry like gateway.metrics."""

from __future__ import annotations

from prometheus_client import Gauge

BREAKER_OPEN = Gauge(
    "gateway_connector_breaker_open",
    "1 while a connector's circuit breaker is open (lookups fail fast), as of its last lookup.",
    ["connector"],
)
