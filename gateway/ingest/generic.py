"""Any JSON alert -> AlertBatch, mapped by `[webhooks.generic.NAME]` JSON pointers (RFC 6901).

Example (Grafana-like body with an `alerts` list):
    [webhooks.generic.grafana]
    token = "..."
    alerts = "/alerts"
    fingerprint = "/fingerprint"
    status = "/status"
    summary = "/annotations/summary"
    severity = "/labels/severity"
    labels = "/labels"
"""

from __future__ import annotations

import json
from typing import Any

from jsonpointer import JsonPointer, JsonPointerException

from gateway.alerts.model import AlertBatch, AlertEvent, Kind
from gateway.config import GenericSource
from gateway.ingest.payload import PayloadError, load_json
from gateway.intake import Source

MAX_ALERTS = 10_000


def _get(doc: Any, pointer: str, where: str, *, required: bool = False) -> Any:
    if not pointer:
        return None
    try:
        return JsonPointer(pointer).resolve(doc)
    except JsonPointerException as exc:
        if required:
            raise PayloadError(f"{where}{pointer}", "missing") from exc
        return None


def _scalar(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def parse(data: bytes, name: str, mapping: GenericSource) -> AlertBatch:
    """The body as a batch; PayloadError names the JSON pointer that did not resolve."""
    body = load_json(data)
    items = _get(body, mapping.alerts, "", required=True) if mapping.alerts else [body]
    if not isinstance(items, list):
        raise PayloadError(mapping.alerts, "expected a list of alerts")
    if len(items) > MAX_ALERTS:
        raise PayloadError(mapping.alerts, f"more than {MAX_ALERTS} alerts in one body")
    events = []
    for i, item in enumerate(items):
        where = f"{mapping.alerts}/{i}" if mapping.alerts else ""
        key = _scalar(_get(item, mapping.fingerprint, where, required=True))
        if not key:
            raise PayloadError(f"{where}{mapping.fingerprint}", "empty")
        status = _scalar(_get(item, mapping.status, where)).strip().casefold()
        raw_labels = _get(item, mapping.labels, where)
        if raw_labels is not None and not isinstance(raw_labels, dict):
            raise PayloadError(f"{where}{mapping.labels}", "expected an object")
        labels = {str(k): _scalar(v) for k, v in (raw_labels or {}).items()}
        host = _scalar(_get(item, mapping.host, where))
        if host:
            labels.setdefault("host", host)
        severity = _scalar(_get(item, mapping.severity, where))
        summary = _scalar(_get(item, mapping.summary, where))
        url = _scalar(_get(item, mapping.url, where))
        description = _scalar(_get(item, mapping.description, where))
        details = [description, ""] if description else []
        details += [f"{k}: {v}" for k, v in sorted(labels.items())]
        if url:
            details.append(f"source: {url}")
        events.append(
            AlertEvent(
                # Namespaced by the configured name: two tools may use the same key values.
                identity=f"{name}/{key}"[:200],
                kind=Kind.RESOLVED if status in mapping.resolved_values else Kind.FIRING,
                subject=(summary or f"{name} alert {key}")[:998],
                severity=severity,
                description="\n".join(details),
                labels=labels,
                url=url,
            )
        )
    return AlertBatch(Source.GENERIC, tuple(events), sender=name)
