"""Storm control: rows held over a recipient's hourly limit become one digest row.

A recipient who would get N updates within the hour during an alert storm gets one mail (or
chat message) listing them, `digest_minutes` after the first one was held.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.config import Settings
from gateway.outbound.message import new_message_id
from gateway.outbound.plan import language_for
from gateway.outbound.render import renderer_for
from gateway.storage.models import OutboxMessage


def write_digests(session: Session, settings: Settings, now: datetime) -> list[OutboxMessage]:
    """Fold each recipient's held rows into one pending digest row once the oldest is due."""
    cfg = settings.outbound
    held = session.scalars(
        select(OutboxMessage).where(OutboxMessage.state == "held").order_by(OutboxMessage.id)
    ).all()
    groups: dict[tuple[str, str], list[OutboxMessage]] = defaultdict(list)
    for row in held:
        groups[(row.channel, row.recipient or "")].append(row)
    due = now - timedelta(minutes=cfg.digest_minutes)
    renderer = renderer_for(settings)
    written: list[OutboxMessage] = []
    for (channel, recipient), rows in groups.items():
        if rows[0].created_at > due:
            continue
        items = [
            {"key": r.payload.get("key", ""), "event": r.event, "subject": r.payload["subject"]}
            for r in rows
        ]
        context = {"key": None, "count": len(items), "items": items, "from_name": cfg.from_name}
        payload: dict[str, object] = {
            "key": None,
            "event": "digest",
            "digest_of": [r.id for r in rows],
        }
        message_id = None
        if channel == "mail":
            language = rows[0].payload.get("language") or language_for(recipient, cfg)
            mail = renderer.mail("digest", language, context)
            payload |= {"subject": mail.subject, "text": mail.text, "html": mail.html}
            message_id = new_message_id(cfg.from_address, None)
        else:
            language = rows[0].payload.get("language") or cfg.language
            chat = renderer.chat("digest", language, context)
            payload |= {"subject": chat.title, "title": chat.title, "text": chat.text}
        digest = OutboxMessage.queued(
            channel=channel,
            event="digest",
            recipient=recipient,
            payload=payload,
            message_id=message_id,
            now=now,
        )
        session.add(digest)
        for row in rows:
            row.state = "digested"
        written.append(digest)
    session.flush()
    return written
