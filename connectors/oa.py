"""OA approval connectors: create an approval instance for a change, read the OA's signed
decisions back, and (optionally) tell the OA how the ticket moves on.

An OA connector is one module with a class that has the `OaConnector` methods below; calls to
it run in the outbox worker (never in a request), so it makes one attempt per call and raises
`Unavailable` (retried with backoff by the outbox) or `Refused` (dead letter at once). Its
callback check is pure: headers, query and body in, decisions out, no network.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

import httpx

from connectors.base import Refused, Unavailable, json_client, retry_after_seconds
from connectors.settings import ConnectorSettings

Verdict = Literal["approve", "reject"]


@dataclass(frozen=True)
class ApprovalRequest:
    """What an OA is told about a change waiting for approval (kept in the outbox row)."""

    key: str
    subject: str
    description: str
    type: str
    priority: str
    requester: str
    approvers: tuple[str, ...]  # the ordered chain: step 1 first

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "approvers": list(self.approvers)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ApprovalRequest:
        return cls(**{**data, "approvers": tuple(data.get("approvers") or ())})


@dataclass(frozen=True)
class Decision:
    """One approver's verdict on one step, as the OA reported it."""

    instance_id: str
    event_id: str  # the OA's id of this event: a redelivery carries the same one
    verdict: Verdict
    approver: str  # the approver's e-mail (an OA user id is mapped back by the connector)
    step: int | None = None  # 1-based; None when the OA does not say
    comment: str = ""


@dataclass(frozen=True)
class Callback:
    """A verified callback: its decisions (none for events that decide nothing) and, when
    the OA prescribes one, the body of the 2xx answer."""

    decisions: tuple[Decision, ...]
    reply: dict[str, Any] | None = None


@dataclass(frozen=True)
class StatusUpdate:
    """A ticket status change, pushed to connectors that want them (through the outbox)."""

    event_id: str
    key: str
    type: str
    status: str
    previous: str | None
    actor: str
    channel: str
    at: str  # ISO 8601
    instance_ids: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "instance_ids": list(self.instance_ids)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StatusUpdate:
        return cls(**{**data, "instance_ids": tuple(data.get("instance_ids") or ())})


class BadSignature(Exception):
    """The callback is not signed by the OA (or is too old): HTTP 401, nothing changes."""


class BadCallback(Exception):
    """The callback is signed but its body is not what the OA documents: HTTP 400."""


class HttpRefused(Refused):
    """A 4xx answer: the request was wrong (or its credentials were)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class OaConnector(Protocol):
    name: str
    # True when ticket status changes should be pushed to it (`push_status`).
    wants_status: bool

    def create_instance(self, request: ApprovalRequest, idempotency_key: str) -> str:
        """The OA's id of a new approval instance; the same key must give the same instance."""
        ...

    def verify_callback(
        self, headers: Mapping[str, str], query: Mapping[str, str], body: bytes, now: float
    ) -> Callback:
        """Check the signature (constant time) and read the decisions; `now` is Unix time.
        Raises BadSignature or BadCallback."""
        ...

    def push_status(self, update: StatusUpdate, idempotency_key: str) -> None: ...

    def close(self) -> None: ...


class OaHttp:
    """The HTTP side shared by OA connectors: one attempt per call, errors by class."""

    def __init__(self, name: str, settings: ConnectorSettings) -> None:
        self.name = name
        self.settings = settings
        self.client = json_client(settings)

    def close(self) -> None:
        self.client.close()

    def post_json(
        self, url: str, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> Any:
        """The decoded answer (None when it has no body). Raises Unavailable or Refused."""
        return self._send(url, headers, json=body)

    def post_bytes(self, url: str, content: bytes, headers: Mapping[str, str]) -> Any:
        """As `post_json`, for a body that must go out byte for byte (it was signed)."""
        return self._send(url, headers, content=content)

    def _send(self, url: str, headers: Mapping[str, str] | None, **body: Any) -> Any:
        try:
            response = self.client.post(url, headers=dict(headers or {}), **body)
        except httpx.TransportError as exc:
            raise Unavailable(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if status == 429 or status >= 500:
            after = retry_after_seconds(response.headers.get("Retry-After"))
            wait = f" (Retry-After {after:g}s)" if after is not None else ""
            raise Unavailable(f"{self.name}: HTTP {status}{wait}: {response.text[:300]}")
        if status >= 400:
            raise HttpRefused(
                f"{self.name}: HTTP {status} for {url}: {response.text[:300]}", status
            )
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise Refused(f"{self.name}: answer from {url} is not JSON") from exc
