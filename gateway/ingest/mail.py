"""Raw RFC 5322 bytes -> Intake. Shared by the SMTP listener and the IMAP poller."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config import Settings
from gateway.ingest.autoreply import classify_automatic
from gateway.ingest.mailparse import ParsedMail, ParseError, parse_message
from gateway.ingest.replies import strip_reply
from gateway.intake import Intake, IntakeFile, Source, without_nul
from gateway.pipeline import TICKET_TAG, RawInput


@dataclass(frozen=True)
class MailIntake:
    intake: Intake
    raw: RawInput


def mail_to_intake(
    data: bytes,
    source: Source,
    settings: Settings,
    *,
    envelope_from: str = "",
    envelope_to: tuple[str, ...] = (),
) -> MailIntake:
    """Parse a message; one that cannot be parsed is still kept, in quarantine."""
    try:
        parsed = parse_message(
            data,
            max_attachment_bytes=settings.tickets.max_attachment_bytes,
            max_attachments=settings.tickets.max_attachments,
        )
    except ParseError as exc:
        intake = Intake(source=source, sender=envelope_from.lower(), subject="")
        raw = RawInput(
            data, envelope_from, envelope_to, quarantine_reason=str(exc) or "unparseable"
        )
        return MailIntake(intake, raw)
    own = (*settings.smtp.addresses, settings.outbound.from_address)
    recipients = _recipients(parsed, envelope_to)
    # Only a mail that can continue a ticket (a reply, a [KEY] tag, a plus-address) is ever
    # read as a comment; stripping quotes from every new request would be wasted work.
    threads = bool(
        parsed.in_reply_to
        or parsed.references
        or TICKET_TAG.search(parsed.subject)
        or any("+" in r for r in recipients)
    )
    auto = classify_automatic(parsed, own_addresses=own)
    intake = Intake(
        source=source,
        sender=parsed.from_address or envelope_from.lower(),
        sender_name=parsed.from_name,
        subject=parsed.subject,
        body=parsed.text,
        recipients=recipients,
        cc=tuple(parsed.cc),
        message_id=parsed.message_id,
        in_reply_to=(*parsed.in_reply_to, *parsed.references),
        received_at=parsed.date,
        reply_text=strip_reply(parsed.text) if threads else None,
        auto=str(auto) if auto else None,
        files=tuple(
            IntakeFile(a.filename or "attachment", a.content_type, a.data)
            for a in parsed.attachments
        ),
        dropped_files=tuple(f"{d.filename or 'attachment'} ({d.reason})" for d in parsed.dropped),
    )
    return MailIntake(without_nul(intake), RawInput(data, envelope_from, envelope_to))


def _recipients(parsed: ParsedMail, envelope_to: tuple[str, ...]) -> tuple[str, ...]:
    """Header recipients plus where the mail was really delivered (Bcc, plus-addresses).

    SMTP gives us the envelope; a mailbox read over IMAP has none, so the delivering MTA's
    Delivered-To / X-Original-To trace headers stand in for it.
    """
    delivered = envelope_to or (
        *parsed.headers.get_all("delivered-to"),
        *parsed.headers.get_all("x-original-to"),
    )
    return tuple(dict.fromkeys((*parsed.to, *(a.strip().lower() for a in delivered))))
