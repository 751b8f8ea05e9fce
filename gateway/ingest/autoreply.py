"""Is this mail from a machine? Bounces, delays, auto-replies, reports, lists, our own loop.

A pure decision on a ParsedMail (STYLE.md: rules only decide). The pipeline stores such mail
and may attach it to a ticket, but never answers it: answering a machine is how two systems
end up mailing each other forever (RFC 3834 §2, RFC 5321 §4.5.5).

The order matters: a bounce relayed through a mailing list carries list headers, a DSN
carries Auto-Submitted like any auto-reply, and an auto-reply often has a null Return-Path
like a bounce; the most specific evidence is checked first.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from enum import StrEnum

from gateway.ingest.mailparse import ParsedMail, Report


class AutoKind(StrEnum):
    BOUNCE = "bounce"  # permanent failure: a DSN with Action: failed, or an MTA's failure text
    DELAY = "delay"  # temporary failure, the MTA is still retrying
    AUTOREPLY = "autoreply"  # RFC 3834 response: vacation, out-of-office, "received" notices
    FEEDBACK_REPORT = "feedback_report"  # RFC 5965 ARF complaint from a feedback loop
    READ_RECEIPT = "read_receipt"  # RFC 8098 MDN, or a positive DSN (delivered/relayed)
    LIST = "list"  # mailing-list traffic (RFC 2369 / RFC 2919 headers, Precedence: list)
    BULK = "bulk"  # other machine mail: Precedence bulk/junk, newsletters, auto-generated
    OWN_LOOP = "own_loop"  # mail we sent ourselves, come back


# Local parts MTAs send DSNs from (RFC 5321 §4.5.5 and long practice).
_DAEMONS = {"mailer-daemon", "mailer_daemon", "mailerdaemon", "mail-daemon", "postmaster"}
_DAEMON_NAMES = re.compile(r"^mail delivery (sub)?system$", re.I)

# Subjects anchored at the start, so a person's "Fwd: Undeliverable: ..." or "Re: ..." about
# a bounce is not mistaken for one.
_BOUNCE_SUBJECT = re.compile(
    r"^\s*(undeliver(able|ed)|returned mail|mail delivery fail|delivery (status notification "
    r"\(failure\)|failure|has failed)|failure notice|mail could not be delivered|non-?deliver|"
    r"mail system error|message not delivered|"
    r"退信|系统退信|系統退信|邮件传输失败|邮件投递失败|投递失败|无法投递|未能送达|無法傳遞|"
    r"メールエラー|配信エラー|配信不能)",
    re.I,
)
_DELAY_SUBJECT = re.compile(
    r"^\s*(delivery status notification \(delay\)|warning: (could not send|message .*delayed)|"
    r"delayed mail|delivery delayed|message delayed|延迟投递|延遲|邮件延迟)",
    re.I,
)
_AUTOREPLY_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response|antwort)|out of (the )?office|abwesenheitsnotiz|"
    r"r[ée]ponse automatique|respuesta autom[áa]tica|"
    r"自动回复|自動回覆|自動回复|自动答复|自动应答|自動応答|自動返信)",
    re.I,
)
# Failure text MTAs put in the readable part of a non-DSN bounce, checked only when the mail
# also returns a message and comes from an automatic-looking sender.
_FAILURE_TEXT = re.compile(
    r"could not be delivered|undeliverable|delivery (has )?failed|permanent error|"
    r"user unknown|mailbox (is )?full|无法送达|无法发送|送信できませんでした|配信できませんでした",
    re.I,
)
_NOREPLY = re.compile(r"^(no-?reply|do-?not-?reply)", re.I)


def classify_automatic(
    parsed: ParsedMail,
    *,
    own_addresses: Collection[str] = (),
    own_header: str = "X-OpsGateway-Ticket",
) -> AutoKind | None:
    """The kind of automatic mail this is, or None for mail from a person."""
    headers = parsed.headers
    own = {a.lower() for a in own_addresses}
    if own_header in headers or (parsed.from_address and parsed.from_address in own):
        return AutoKind.OWN_LOOP
    if parsed.report is not None and (kind := _from_report(parsed.report)):
        return kind
    if _looks_like_bounce(parsed):
        return AutoKind.DELAY if _DELAY_SUBJECT.search(parsed.subject) else AutoKind.BOUNCE

    auto_submitted = headers.get("Auto-Submitted", "no").strip().lower()
    precedence = headers.get("Precedence", "").strip().lower()
    # RFC 3834 §5: Auto-Submitted "auto-replied" marks a response; the vendor headers and
    # Exchange's X-Auto-Response-Suppress (set on its own OOF replies) say the same.
    if (
        auto_submitted.startswith("auto-replied")
        or "X-Autoreply" in headers
        or "X-Autorespond" in headers
        or re.search(r"\b(all|oof|autoreply)\b", headers.get("X-Auto-Response-Suppress", ""), re.I)
        or precedence == "auto_reply"
        or _AUTOREPLY_SUBJECT.search(parsed.subject)
    ):
        return AutoKind.AUTOREPLY
    if "List-Id" in headers or precedence == "list":
        return AutoKind.LIST
    # Any other Auto-Submitted value than "no" (auto-generated, auto-notified: RFC 3834 §5,
    # RFC 5436) is machine mail that answers nothing, such as a monitoring alert.
    if auto_submitted != "no" or precedence in ("bulk", "junk") or "List-Unsubscribe" in headers:
        return AutoKind.BULK
    if headers.get("Return-Path", "").strip() == "<>":
        # A null reverse-path is reserved for notifications (RFC 5321 §4.5.5, RFC 3834 §3.3).
        return AutoKind.AUTOREPLY
    return None


def _from_report(report: Report) -> AutoKind | None:
    """RFC 6522 report types; for a DSN, the per-recipient Action fields (RFC 3464 §2.3.3)."""
    if report.report_type == "feedback-report":
        return AutoKind.FEEDBACK_REPORT
    if report.report_type == "disposition-notification":
        return AutoKind.READ_RECEIPT
    if report.report_type != "delivery-status":
        return None
    actions = {g.get("Action", "").strip().lower() for g in report.fields} - {""}
    if "failed" in actions:
        return AutoKind.BOUNCE
    if "delayed" in actions:
        return AutoKind.DELAY
    if actions and actions <= {"delivered", "relayed", "expanded"}:
        return AutoKind.READ_RECEIPT
    return AutoKind.BOUNCE  # a DSN without usable Action fields is reported as a failure


def _is_daemon(parsed: ParsedMail) -> bool:
    local = parsed.from_address.partition("@")[0]
    return_path = parsed.headers.get("Return-Path", "").strip("<> \t").partition("@")[0]
    return (
        local in _DAEMONS
        or return_path.lower() == "mailer-daemon"
        or bool(_DAEMON_NAMES.match(parsed.from_name))
    )


def _looks_like_bounce(parsed: ParsedMail) -> bool:
    """A bounce without a DSN part: an MTA sender, X-Failed-Recipients (Exim, Gmail), a
    bounce subject, or failure text next to the returned message from an automatic sender."""
    headers = parsed.headers
    if _is_daemon(parsed) and not _AUTOREPLY_SUBJECT.search(parsed.subject):
        return True
    if "X-Failed-Recipients" in headers or _BOUNCE_SUBJECT.search(parsed.subject):
        return True
    returns_message = any(
        a.content_type in ("message/rfc822", "text/rfc822-headers") for a in parsed.attachments
    )
    automatic_sender = (
        _NOREPLY.match(parsed.from_address)
        or headers.get("Return-Path", "").strip() == "<>"
        or headers.get("Auto-Submitted", "no").strip().lower() != "no"
    )
    return bool(returns_message and automatic_sender and _FAILURE_TEXT.search(parsed.text))
