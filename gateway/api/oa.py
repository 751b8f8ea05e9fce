"""POST /webhooks/oa/{connector}: an OA system's signed decisions on change approvals.

401 when the signature does not verify (nothing is read further, nothing changes); 404 for a
name that is no OA connector, or an instance no ticket has; 400 for a signed body that is not
the documented shape; 409 when a decision is not for the current step (nothing journalled);
2xx only after the decisions are committed (a redelivery gets 2xx too, and changes nothing);
503 when the store is down (the StoreUnavailable handler).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from connectors.oa import BadCallback, BadSignature, OaConnector
from connectors.registry import build_oa
from gateway.api.errors import ApiError
from gateway.approvals.callbacks import NotCurrent, UnknownInstance, apply_callback
from gateway.config import Settings

log = logging.getLogger(__name__)
router = APIRouter(prefix="/webhooks")


def _connector(request: Request, name: str) -> OaConnector:
    settings: Settings = request.app.state.settings
    cfg = settings.connectors.get(name)
    if cfg is None or not cfg.is_oa:
        raise ApiError(
            404, "not_found", f"no OA connector [connectors.{name}] in the configuration"
        )
    built: dict[str, OaConnector] = request.app.state.oa_connectors
    if name not in built:
        built[name] = build_oa(name, cfg)
    return built[name]


@router.post("/oa/{connector}")
async def oa_callback(request: Request, connector: str) -> Any:
    oa = _connector(request, connector)
    body = await request.body()
    now = request.app.state.clock()
    try:
        callback = oa.verify_callback(request.headers, request.query_params, body, now.timestamp())
    except BadSignature as exc:
        log.warning("OA callback for %s refused: %s", connector, exc)
        raise ApiError(401, "unauthorized", f"{connector}: {exc}") from None
    except BadCallback as exc:
        raise ApiError(400, "invalid", f"{connector}: {exc}") from None
    if not callback.decisions:
        # check_url, a task that started: answered without touching the store.
        reply = callback.reply if callback.reply is not None else {"ok": True, "decisions": []}
        return JSONResponse(reply)
    outcome = await run_in_threadpool(
        apply_callback,
        request.app.state.db,
        request.app.state.settings,
        connector,
        callback.decisions,
        now,
    )
    if isinstance(outcome, NotCurrent):
        raise ApiError(409, "not_current", outcome.reason, event_id=outcome.event_id)
    if isinstance(outcome, UnknownInstance):
        raise ApiError(
            404,
            "unknown_instance",
            f"no ticket has {connector} instance {outcome.instance_id!r}",
            event_id=outcome.event_id,
        )
    if callback.reply is not None:
        return JSONResponse(callback.reply)  # the OA prescribes its answer (DingTalk)
    return JSONResponse({"ok": True, "decisions": [r.to_dict() for r in outcome]})
