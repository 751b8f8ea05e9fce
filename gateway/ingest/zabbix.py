"""Zabbix webhook -> AlertBatch.

Two body layouts are accepted:
- the one our media type sends (deploy/zabbix/): event ids, value, update status, severity,
  host, trigger, tags, operational data, URL, message. Identity = the problem event id
  ({EVENT.ID} is the problem's id in problem, recovery and update messages alike).
- the flat layout of the common hand-made media type (hostname, severity, status, item,
  trigger, link; e.g. Zulip's documentation). It has no event id, so the identity is the
  trigger id from the link (else host + trigger name), and status OK/RESOLVED is a recovery.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Any
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from gateway.alerts.model import AlertBatch, AlertEvent, Kind
from gateway.ingest.payload import PayloadError, load_json, validate
from gateway.intake import Source

# A macro Zabbix could not expand stays literal ("{EVENT.RECOVERY.ID}"): treat it as empty.
_MACRO = re.compile(r"^\{[A-Z0-9._#]+\}$")


def _text(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and _MACRO.match(value.strip()):
        return ""
    return value


Text = Annotated[str, BeforeValidator(_text)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Tag(_Model):
    tag: Text
    value: Text = ""


class MediaTypeEvent(_Model):
    """The body deploy/zabbix/ops-gateway.yaml's script sends."""

    event_id: Annotated[str, BeforeValidator(_text), Field(pattern=r"^\d+$")]
    recovery_event_id: Text = ""
    event_value: Annotated[str, BeforeValidator(_text), Field(pattern="^[01]$")]
    event_update_status: Annotated[str, BeforeValidator(_text), Field(pattern="^[01]?$")] = "0"
    severity: Text = ""
    host: Text = Field(min_length=1)
    host_ip: Text = ""
    trigger_id: Text = ""
    trigger_name: Text = Field(min_length=1)
    tags: list[Tag] = Field(default_factory=list)
    opdata: Text = ""
    url: Text = ""
    subject: Text = ""
    message: Text = ""
    event_time: Text = ""
    recovery_time: Text = ""
    update_message: Text = ""
    update_user: Text = ""
    update_action: Text = ""
    ticket_key: Text = ""


class FlatEvent(_Model):
    """hostname / severity / status / item / trigger / link."""

    hostname: Text = Field(min_length=1)
    severity: Text = ""
    status: Text = Field(min_length=1)
    item: Text = ""
    trigger: Text = Field(min_length=1)
    link: Text = ""


RECOVERED = frozenset({"ok", "resolved", "recovery"})


def parse(data: bytes) -> AlertBatch:
    """The body as a one-event batch; PayloadError names the first bad field."""
    body = load_json(data)
    if not isinstance(body, dict):
        raise PayloadError("", "expected a JSON object")
    if "event_id" in body or "event_value" in body:
        return AlertBatch(Source.ZABBIX, (_media_type(validate(MediaTypeEvent, body)),))
    return AlertBatch(Source.ZABBIX, (_flat(validate(FlatEvent, body)),))


def _media_type(e: MediaTypeEvent) -> AlertEvent:
    if e.event_update_status == "1":
        kind = Kind.UPDATE
    elif e.event_value == "0":
        kind = Kind.RESOLVED
    else:
        kind = Kind.FIRING
    labels = {"host": e.host, "severity": e.severity}
    if e.host_ip:
        labels["host_ip"] = e.host_ip
    if e.trigger_id:
        labels["trigger_id"] = e.trigger_id
    for tag in e.tags:
        labels.setdefault(tag.tag, tag.value)
    lines = [e.message.strip(), ""] if e.message.strip() else []
    lines += [
        f"host: {e.host}" + (f" ({e.host_ip})" if e.host_ip else ""),
        f"severity: {e.severity}",
    ]
    if e.opdata:
        lines.append(f"operational data: {e.opdata}")
    if e.tags:
        lines.append(
            "tags: " + ", ".join(f"{t.tag}={t.value}" if t.value else t.tag for t in e.tags)
        )
    if e.event_time:
        lines.append(f"started: {e.event_time}")
    if e.url:
        lines.append(f"zabbix: {e.url}")
    update = e.update_message.strip()
    if e.update_action:
        update = f"{e.update_action}: {update}" if update else e.update_action
    message = f"{e.update_user or 'Zabbix'}: {update}" if update else e.subject or e.trigger_name
    return AlertEvent(
        identity=e.event_id,
        kind=kind,
        subject=f"{e.trigger_name} on {e.host}",
        severity=e.severity,
        description="\n".join(lines),
        labels=labels,
        url=e.url,
        message=message,
    )


def _flat(e: FlatEvent) -> AlertEvent:
    query = parse_qs(urlsplit(e.link).query) if e.link else {}
    trigger_id = (query.get("triggerid") or [""])[0]
    if trigger_id.isdigit():
        identity = f"trigger:{trigger_id}:{e.hostname}"
    else:
        digest = hashlib.sha256(f"{e.hostname}\x1f{e.trigger}".encode()).hexdigest()[:24]
        identity = f"trigger:{digest}"
    kind = Kind.RESOLVED if e.status.strip().casefold() in RECOVERED else Kind.FIRING
    labels = {"host": e.hostname, "severity": e.severity}
    if trigger_id:
        labels["trigger_id"] = trigger_id
    lines = [f"host: {e.hostname}", f"severity: {e.severity}", f"status: {e.status}"]
    if e.item:
        lines.append(f"item: {e.item}")
    if e.link:
        lines.append(f"zabbix: {e.link}")
    return AlertEvent(
        identity=identity,
        kind=kind,
        subject=f"{e.trigger} on {e.hostname}"[:998],
        severity=e.severity,
        description="\n".join(lines),
        labels=labels,
        url=e.link,
    )
