"""The normalised alert every webhook adapter produces, and the pure rules around it.

Adapters (gateway/ingest/alertmanager.py, zabbix.py, generic.py) turn a request body into an
`AlertBatch`; the pipeline applies it. Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from gateway.config import WebhookSource
from gateway.intake import Source


class Kind(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"
    UPDATE = "update"  # Zabbix acknowledge/comment: becomes a ticket comment


# Not frozen: a frozen dataclass sets each field through object.__setattr__, which was a
# third of turning a 100-alert body into events. Nothing mutates an event after parsing.
@dataclass(slots=True)
class AlertEvent:
    """One alert as a source reports it, whatever the source's own field names."""

    identity: str  # fingerprint / Zabbix problem event id / generic key
    kind: Kind
    subject: str
    severity: str = ""
    description: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    starts_at: datetime | None = None
    ends_at: datetime | None = None  # the recovery time of a resolved alert
    url: str = ""
    message: str = ""  # Zabbix update text
    # Builds the description on demand: only a new ticket needs one, and in a storm of
    # repeats formatting it for every alert was a fifth of the parse time.
    describe: Callable[[], str] | None = field(default=None, compare=False, repr=False)

    def details(self) -> str:
        return self.describe() if self.describe is not None else self.description


@dataclass(frozen=True)
class AlertBatch:
    """One webhook delivery: its alerts in the order sent."""

    source: Source
    events: tuple[AlertEvent, ...]
    # Alerts the sender left out (Alertmanager max_alerts): their state is unknown.
    truncated: int = 0
    # The source's own name for this configured sender (generic: the {source} path part).
    sender: str = ""


def priority_for(severity: str, policy: WebhookSource) -> str:
    """The ticket priority a source's severity maps to (case-insensitive)."""
    return policy.severity_map.get(severity.strip().casefold(), policy.default_priority)


def group_identity(labels: Mapping[str, str], group_by: Sequence[str]) -> str:
    """A stable identity for the group an alert falls in (same values of `group_by` labels)."""
    values = "\x1f".join(f"{name}={labels.get(name, '')}" for name in group_by)
    return "group:" + hashlib.sha256(values.encode()).hexdigest()[:24]


def label_fingerprint(labels: Mapping[str, str]) -> str:
    """An identity from the label set, for senders that send no fingerprint of their own."""
    flat = "\x1f".join(f"{k}\x1e{labels[k]}" for k in sorted(labels))
    return "labels:" + hashlib.sha256(flat.encode()).hexdigest()[:24]


def grouped(batch: AlertBatch, group_by: Sequence[str]) -> AlertBatch:
    """Re-key a batch's events to their group identity (`group_by` non-empty).

    A group's ticket only resolves when the batch shows every alert of that group resolved
    and none was cut: Alertmanager sends a group's whole alert list with each notification,
    so a resolved alert beside a firing one means the group is still firing.
    """
    if not group_by:
        return batch
    keyed = [(group_identity(e.labels, group_by), e) for e in batch.events if e.kind != Kind.UPDATE]
    firing = {key for key, e in keyed if e.kind == Kind.FIRING}
    events = []
    for key, e in keyed:
        if e.kind == Kind.RESOLVED and (key in firing or batch.truncated):
            continue  # other alerts of the group still fire (or may, when truncated)
        group_labels = {name: e.labels.get(name, "") for name in group_by}
        events.append(
            AlertEvent(
                identity=key,
                kind=e.kind,
                subject=e.subject,
                severity=e.severity,
                description=e.description,
                describe=e.describe,
                labels={**e.labels, **group_labels},
                annotations=e.annotations,
                starts_at=e.starts_at,
                ends_at=e.ends_at,
                url=e.url,
            )
        )
    events.extend(e for e in batch.events if e.kind == Kind.UPDATE)
    return AlertBatch(batch.source, tuple(events), batch.truncated, batch.sender)
