"""What a reply to a ticket asks for: pure functions over the reply's text and addresses.

- Signed reply addresses: `support+INC-000123.3f9a1c2b7e@example.com`. The token is an HMAC
  of the ticket key, so a sender cannot guess the address of somebody else's ticket.
- Agent commands on their own lines (`#assign alice@example.com`, `#priority P1`, `#resolve`).
- The requester's verdict on a resolved ticket: accept (close) or reject (reopen).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

TOKEN_LENGTH = 10
# Addresses arrive lower-cased by the parser, so the key is matched case-insensitively.
_PLUS = re.compile(
    r"^(?P<local>[^+@]+)\+(?P<key>[a-z][a-z0-9]{1,15}-\d{3,12})\.(?P<token>[0-9a-f]+)@(?P<domain>.+)$",
    re.IGNORECASE,
)
_COMMAND = re.compile(r"^#(?P<name>[a-z_]+)(?:[ \t]+(?P<arg>.*?))?[ \t]*$", re.IGNORECASE)
COMMANDS = (
    "assign", "group", "priority", "start", "pend", "resolve", "close", "reopen", "note",
    "check", "uncheck",
)  # fmt: skip


def reply_token(secret: str, key: str) -> str:
    return hmac.new(secret.encode(), key.encode(), hashlib.sha256).hexdigest()[:TOKEN_LENGTH]


def reply_address(base: str, secret: str, key: str) -> str:
    """The ticket's own reply address, plus-addressed onto the support mailbox `base`."""
    local, _, domain = base.partition("@")
    return f"{local}+{key}.{reply_token(secret, key)}@{domain}"


def key_from_addresses(addresses: Iterable[str], secret: str) -> str | None:
    """The ticket key of the first correctly signed reply address, else None."""
    for address in addresses:
        m = _PLUS.match(address.strip())
        if m is None:
            continue
        key = m.group("key").upper()
        if hmac.compare_digest(m.group("token").lower(), reply_token(secret, key)):
            return key
    return None


@dataclass(frozen=True)
class MailCommand:
    name: str
    arg: str
    line: int


def parse_commands(text: str) -> tuple[list[MailCommand], str]:
    """Split `#command arg` lines from the rest; unknown `#words` stay in the text."""
    commands: list[MailCommand] = []
    kept: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        m = _COMMAND.match(line.strip())
        if m and m.group("name").lower() in COMMANDS:
            name, arg = m.group("name").lower(), (m.group("arg") or "").strip()
            commands.append(MailCommand(name, arg, number))
        else:
            kept.append(line)
    return commands, "\n".join(kept).strip()


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def verdict(text: str, accept: Sequence[str], reject: Sequence[str]) -> str | None:
    """'reject', 'accept' or None, from the first lines of a reply to a resolved ticket.

    Rejection wins when both appear ("not fixed" contains "fixed"), and only the opening of the
    reply counts so that quoted or long text does not decide by accident.
    """
    head = _fold("\n".join(text.strip().splitlines()[:3]))[:300]
    if any(_fold(word) in head for word in reject):
        return "reject"
    if any(_fold(word) in head for word in accept):
        return "accept"
    return None
