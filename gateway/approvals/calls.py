"""The outbox worker's side of connector calls: make the call, classify the outcome, and once it
succeeded record what it returned (the OA's instance id) in the same transaction that marks
the row sent."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.base import ConnectorError, Refused
from connectors.oa import ApprovalRequest, OaConnector, StatusUpdate
from connectors.registry import build_oa
from gateway.approvals import CREATE, STATUS, oa_channel
from gateway.config import Settings
from gateway.outbound.policy import Failed, Outcome, Sent
from gateway.storage.models import ApprovalInstance, Ticket
from gateway.tickets import service

log = logging.getLogger(__name__)


class ConnectorCalls:
    """Connectors built on first use, one per name, for the worker's lifetime."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._built: dict[str, OaConnector] = {}

    def connector(self, name: str) -> OaConnector | None:
        cfg = self.settings.connectors.get(name)
        if cfg is None or not cfg.is_oa:
            return None
        if name not in self._built:
            self._built[name] = build_oa(name, cfg)
        return self._built[name]

    def call(self, event: str, connector: str, key: str, payload: dict[str, Any]) -> Outcome:
        """One attempt: Sent (with the instance id of a create), or Failed by error class."""
        oa = self.connector(connector)
        if oa is None:
            return Failed(f"no OA connector {connector!r} in [connectors]", permanent=True)
        try:
            if event == CREATE:
                request = ApprovalRequest.from_json(payload["request"])
                return Sent({"instance_id": oa.create_instance(request, key)})
            if event == STATUS:
                oa.push_status(StatusUpdate.from_json(payload["update"]), key)
                return Sent()
        except Refused as exc:  # 4xx, a missing user mapping: retrying repeats it
            return Failed(str(exc), permanent=True)
        except ConnectorError as exc:  # down, slow, 5xx, 429
            return Failed(str(exc))
        except (KeyError, TypeError) as exc:
            return Failed(f"malformed outbox payload: {exc!r}", permanent=True)
        return Failed(f"unknown connector call {event!r}", permanent=True)

    def close(self) -> None:
        for oa in self._built.values():
            oa.close()


def record_sent(
    session: Session, event: str, payload: dict[str, Any], outcome: Sent, now: datetime
) -> None:
    """After a create: keep the instance id (the callbacks name it) and journal it."""
    if event != CREATE:
        return
    connector, instance_id = payload["connector"], str(outcome.detail["instance_id"])
    found = session.scalar(
        select(ApprovalInstance.id).where(
            ApprovalInstance.connector == connector, ApprovalInstance.instance_id == instance_id
        )
    )
    ticket = session.get(Ticket, payload["ticket_id"])
    if found is not None or ticket is None:
        return  # the OA answered a repeated key with the instance it already made
    session.add(
        ApprovalInstance(
            ticket_id=ticket.id,
            connector=connector,
            instance_id=instance_id,
            status="pending",
            created_at=now,
            updated_at=now,
        )
    )
    service.journal(
        session,
        ticket,
        service.system_actor(oa_channel(connector)),
        "approval_instance",
        now,
        after={"connector": connector, "instance_id": instance_id},
        note=f"approval instance {instance_id} created in {connector}",
        public=False,
    )
    log.info("%s: approval instance %s in %s", ticket.key, instance_id, connector)
