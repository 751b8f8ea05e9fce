"""POST /webhooks/{alertmanager,zabbix,generic/NAME}: authenticate, parse, hand to the pipeline.

200 only after the batch is committed (Alertmanager retries anything else); 400 names the bad
field (the raw body is kept); 401 without the source's credentials; 503 when the store is
down (from the StoreUnavailable handler, with Retry-After).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from gateway.alerts import intake as alert_intake
from gateway.alerts.apply import AlertOutcome
from gateway.alerts.model import AlertBatch, grouped
from gateway.api.errors import ApiError
from gateway.config import Settings, WebhookSource
from gateway.ingest import alertmanager, generic, zabbix
from gateway.ingest.payload import PayloadError
from gateway.intake import without_nul
from gateway.pipeline import Pipeline, RawInput

log = logging.getLogger(__name__)
router = APIRouter(prefix="/webhooks")

Parse = Callable[[bytes], AlertBatch]


def authorised(source: WebhookSource, header: str | None) -> bool:
    """Bearer token or HTTP basic credentials of `source`, compared in constant time."""
    if not source.auth_required:
        return True
    scheme, _, value = (header or "").partition(" ")
    scheme, value = scheme.lower(), value.strip()
    if scheme == "bearer" and source.token:
        return hmac.compare_digest(value.encode(), source.token.encode())
    if scheme == "basic" and (source.username or source.password):
        try:
            user, _, password = base64.b64decode(value, validate=True).partition(b":")
        except (binascii.Error, ValueError):
            return False
        # Both halves are compared whatever the first says: timing tells nothing.
        ok_user = hmac.compare_digest(user, source.username.encode())
        ok_password = hmac.compare_digest(password, source.password.encode())
        return ok_user and ok_password
    return False


def warn_unauthenticated(settings: Settings) -> None:
    """Log every webhook source that takes posts from anybody (CONTRACT.md: token = "")."""
    sources = {
        "alertmanager": settings.webhooks.alertmanager,
        "zabbix": settings.webhooks.zabbix,
        **{f"generic/{n}": s for n, s in settings.webhooks.generic.items()},
    }
    for name, source in sources.items():
        if not source.auth_required:
            log.warning("webhook %s has no token or basic auth: anyone may post alerts", name)


@dataclass(frozen=True)
class _Refused:
    error: PayloadError


def _process(
    pipeline: Pipeline, source: str, policy: WebhookSource, body: bytes, parse: Parse
) -> list[AlertOutcome] | _Refused:
    raw = RawInput(body)
    try:
        batch = without_nul(parse(body))
    except PayloadError as exc:
        alert_intake.keep_unparsed(pipeline, source, raw, str(exc))
        return _Refused(exc)
    return alert_intake.process_alerts(pipeline, grouped(batch, policy.group_by), raw, policy)


async def _intake(request: Request, source: str, policy: WebhookSource, parse: Parse) -> Any:
    if not authorised(policy, request.headers.get("authorization")):
        raise ApiError(401, "unauthorized", f"missing or invalid credentials for {source}")
    body = await request.body()
    pipeline: Pipeline = request.app.state.pipeline
    # Parsing and the transaction block: keep them off the event loop, in the one webhook
    # thread. With a thread per request (Starlette's pool), concurrent deliveries fought over
    # the GIL while one of them held SQLite's write lock: 25-28k alerts/s in
    # bench/bench_alerts.py against 38-42k with a single thread.
    loop = asyncio.get_running_loop()
    result = await loop.run_in_executor(
        request.app.state.webhook_executor, _process, pipeline, source, policy, body, parse
    )
    if isinstance(result, _Refused):
        raise ApiError(400, "invalid", str(result.error), field=result.error.field)
    return JSONResponse(
        {
            "source": source,
            "received": len(result),
            "alerts": [o.to_dict() for o in result],
        }
    )


def _settings(request: Request) -> Settings:
    return request.app.state.settings


@router.post("/alertmanager")
async def post_alertmanager(request: Request) -> Any:
    policy = _settings(request).webhooks.alertmanager
    return await _intake(request, "alertmanager", policy, alertmanager.parse)


@router.post("/zabbix")
async def post_zabbix(request: Request) -> Any:
    return await _intake(request, "zabbix", _settings(request).webhooks.zabbix, zabbix.parse)


@router.post("/generic/{name}")
async def post_generic(request: Request, name: str) -> Any:
    mapping = _settings(request).webhooks.generic.get(name)
    if mapping is None:
        raise ApiError(404, "not_found", f"no [webhooks.generic.{name}] in the configuration")
    return await _intake(
        request, "generic", mapping, lambda body: generic.parse(body, name, mapping)
    )
