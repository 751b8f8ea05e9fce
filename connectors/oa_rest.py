"""A generic REST OA: the gateway creates an approval instance, the OA posts each approver's
decision back, signed with a shared secret (README "OA approvals" documents the shapes).

```toml
[connectors.oa]
kind = "oa_rest"
url = "https://oa.example.com/api"     # POST {url}/instances
token = "…"                            # sent as "<auth_scheme> <token>" in auth_header
callback_secret = "…"                  # HMAC-SHA256 key of the callbacks and status pushes
status_url = "https://oa.example.com/api/ticket-status"   # optional
```

Signature: `X-OA-Signature: sha256=<hex HMAC-SHA256(callback_secret, timestamp + "." + body)>`
with `X-OA-Timestamp: <Unix seconds>`; a timestamp further than `replay_seconds` from now is
refused, so a captured callback cannot be replayed later (and within the window the event id
makes a replay change nothing).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from connectors.base import Refused
from connectors.oa import (
    ApprovalRequest,
    BadCallback,
    BadSignature,
    Callback,
    Decision,
    OaHttp,
    StatusUpdate,
)
from connectors.settings import ConnectorSettings

SIGNATURE_HEADER = "x-oa-signature"
TIMESTAMP_HEADER = "x-oa-timestamp"
VERDICTS = {"approve": "approve", "approved": "approve", "reject": "reject", "rejected": "reject"}


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The X-OA-Signature value for `body` sent at `timestamp` (Unix seconds, as text)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


class RestOa(OaHttp):
    def __init__(
        self, name: str, settings: ConnectorSettings, *, wall: Callable[[], float] = time.time
    ) -> None:
        super().__init__(name, settings)
        self.wall = wall
        self.base = settings.url.rstrip("/")
        self.wants_status = bool(settings.status_url)

    def _headers(self, idempotency_key: str) -> dict[str, str]:
        headers = {"Idempotency-Key": idempotency_key}
        token = self.settings.token
        if token:
            value = f"{self.settings.auth_scheme} {token}".strip()
            headers[self.settings.auth_header] = value
        return headers

    def create_instance(self, request: ApprovalRequest, idempotency_key: str) -> str:
        body = {
            "ticket": {
                "key": request.key,
                "subject": request.subject,
                "description": request.description,
                "type": request.type,
                "priority": request.priority,
                "requester": request.requester,
            },
            "approvers": [
                {"step": n, "email": email} for n, email in enumerate(request.approvers, 1)
            ],
        }
        answer = self.post_json(f"{self.base}/instances", body, self._headers(idempotency_key))
        instance = (answer or {}).get("instance_id") if isinstance(answer, dict) else None
        if not instance:
            raise Refused(f"{self.name}: the answer to POST /instances has no instance_id")
        return str(instance)

    def verify_callback(
        self, headers: Mapping[str, str], query: Mapping[str, str], body: bytes, now: float
    ) -> Callback:
        lower = {k.lower(): v for k, v in headers.items()}
        stamp = lower.get(TIMESTAMP_HEADER, "")
        offered = lower.get(SIGNATURE_HEADER, "")
        expected = sign(self.settings.callback_secret, stamp, body)
        # Compared before anything else is looked at: timing says nothing about the secret.
        if not hmac.compare_digest(offered.encode(), expected.encode()):
            raise BadSignature("X-OA-Signature does not match the body")
        try:
            sent = int(stamp)
        except ValueError:
            raise BadSignature("X-OA-Timestamp is not Unix seconds") from None
        if abs(now - sent) > self.settings.replay_seconds:
            raise BadSignature(
                f"X-OA-Timestamp is {now - sent:+.0f}s from now "
                f"(allowed ±{self.settings.replay_seconds}s)"
            )
        return Callback((_decision(body),))

    def push_status(self, update: StatusUpdate, idempotency_key: str) -> None:
        body = json.dumps(update.to_json(), ensure_ascii=False, separators=(",", ":")).encode()
        stamp = str(int(self.wall()))
        headers = self._headers(idempotency_key) | {
            "Content-Type": "application/json",
            "X-OA-Timestamp": stamp,
            "X-OA-Signature": sign(self.settings.callback_secret, stamp, body),
        }
        # Sent as the exact bytes that were signed.
        self.post_bytes(self.settings.status_url, body, headers)


def _decision(body: bytes) -> Decision:
    try:
        data: Any = json.loads(body)
    except ValueError as exc:
        raise BadCallback(f"body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadCallback("body must be a JSON object")
    missing = [k for k in ("event_id", "instance_id", "approver", "decision") if not data.get(k)]
    if missing:
        raise BadCallback(f"missing {', '.join(missing)}")
    verdict = VERDICTS.get(str(data["decision"]).lower())
    if verdict is None:
        raise BadCallback(f"decision must be approve or reject (got {data['decision']!r})")
    step = data.get("step")
    if step is not None and (not isinstance(step, int) or isinstance(step, bool) or step < 1):
        raise BadCallback(f"step must be a positive integer (got {step!r})")
    comment = data.get("comment") or ""
    return Decision(
        instance_id=str(data["instance_id"]),
        event_id=str(data["event_id"]),
        verdict=verdict,  # type: ignore[arg-type]
        approver=str(data["approver"]).strip().lower(),
        step=step,
        comment=str(comment)[:2000],
    )
