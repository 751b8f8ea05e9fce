"""Alertmanager webhook (payload version 4) -> AlertBatch.

Decide per alert: the top-level `status` says "resolved" as soon as the *listed* alerts are
resolved, even when truncated ones still fire (corpus: am025--linkflap-truncated-resolved).
"""

from __future__ import annotations

from datetime import datetime
from functools import partial

from pydantic import BaseModel, ConfigDict, Field

from gateway.alerts.model import AlertBatch, AlertEvent, Kind, label_fingerprint
from gateway.ingest.payload import validate
from gateway.intake import Source


class _Model(BaseModel):
    # New Alertmanager versions add fields; unknown ones must not refuse a notification.
    model_config = ConfigDict(extra="ignore")


class AmAlert(_Model):
    status: str | None = Field(default=None, pattern="^(firing|resolved)$")
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime | None = None
    endsAt: datetime | None = None
    generatorURL: str = ""
    # Alertmanager >= 0.19 sends one; older senders and hand-written bodies may not.
    fingerprint: str = Field(default="", max_length=128)


class AmPayload(_Model):
    version: str = "4"
    status: str = Field(default="firing", pattern="^(firing|resolved)$")
    receiver: str = ""
    groupKey: str = ""
    truncatedAlerts: int = Field(default=0, ge=0)
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    alerts: list[AmAlert]


# Alertmanager's "no end" value, 0001-01-01T00:00:00Z.
def _real(value: datetime | None) -> datetime | None:
    return value if value is not None and value.year > 1 else None


def subject(alert: AmAlert) -> str:
    """annotations.summary, else the alert name with its instance/host."""
    summary = (alert.annotations.get("summary") or alert.annotations.get("message") or "").strip()
    if summary:  # a blank summary (" ") falls through to the name, as a missing one does
        return summary.splitlines()[0][:998]
    name = alert.labels.get("alertname", "alert")
    where = alert.labels.get("instance") or alert.labels.get("host")
    return f"{name} on {where}" if where else name


def describe(alert: AmAlert, payload: AmPayload) -> str:
    """The ticket description: annotations, labels, links and times, as plain text."""
    lines = []
    if "description" in alert.annotations:
        lines += [alert.annotations["description"].strip(), ""]
    for name, value in sorted(alert.annotations.items()):
        if name not in ("description", "summary"):
            lines.append(f"{name}: {value}")
    lines.append("labels: " + ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items())))
    if alert.startsAt is not None:
        lines.append(f"startsAt: {alert.startsAt.isoformat()}")
    if alert.generatorURL:
        lines.append(f"source: {alert.generatorURL}")
    if payload.externalURL:
        lines.append(f"alertmanager: {payload.externalURL}")
    return "\n".join(lines)


def instance_host(instance: str) -> str:
    """The host of a Prometheus `instance` label: "db-01:9100" -> "db-01", "[::1]:9100" -> "::1"."""
    if instance.startswith("["):  # [IPv6]:port
        return instance[1:].split("]", 1)[0]
    return instance.rsplit(":", 1)[0] if instance.count(":") == 1 else instance


def parse(data: bytes) -> AlertBatch:
    """The body as a batch; PayloadError names the first bad field."""
    payload = validate(AmPayload, data)
    events = []
    for alert in payload.alerts:
        status = alert.status or payload.status
        identity = alert.fingerprint or label_fingerprint(alert.labels)
        labels = alert.labels  # a fresh dict from the parse: ours to extend
        # Kept for CMDB enrichment: the host an instance label names ("db-01:9100" -> db-01).
        if "host" not in labels and labels.get("instance"):
            labels["host"] = instance_host(labels["instance"])
        events.append(
            AlertEvent(
                identity=identity,
                kind=Kind.RESOLVED if status == "resolved" else Kind.FIRING,
                subject=subject(alert),
                severity=labels.get("severity", ""),
                describe=partial(describe, alert, payload),
                labels=labels,
                annotations=alert.annotations,
                starts_at=_real(alert.startsAt),
                ends_at=_real(alert.endsAt) if status == "resolved" else None,
                url=alert.generatorURL,
            )
        )
    return AlertBatch(Source.ALERTMANAGER, tuple(events), payload.truncatedAlerts)
