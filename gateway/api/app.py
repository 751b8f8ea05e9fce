"""The HTTP application: API, health, metrics and the alert webhooks."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from fastapi import FastAPI

from gateway.api import errors, health, inspections, kb, oa, outbox, reports, tickets, webhooks
from gateway.api.auth import TokenAuth
from gateway.api.limits import BodyLimit
from gateway.clock import Clock, utc_now
from gateway.config import Settings
from gateway.pipeline import Pipeline
from gateway.storage.db import Database


def create_app(
    settings: Settings,
    db: Database,
    pipeline: Pipeline,
    *,
    clock: Clock = utc_now,
    accepting: Callable[[], bool] = lambda: True,
) -> FastAPI:
    app = FastAPI(
        title="ops-gateway",
        version="0.1.0",
        description="Intake gateway for IT-operations tickets.",
    )
    app.state.settings = settings
    app.state.db = db
    app.state.pipeline = pipeline
    app.state.clock = clock
    app.state.accepting = accepting
    app.state.auth = TokenAuth(settings.api.tokens)
    # One thread parses and stores webhook deliveries, in arrival order (see webhooks.py).
    app.state.webhook_executor = ThreadPoolExecutor(1, thread_name_prefix="webhooks")
    errors.install(app)
    app.include_router(health.router)
    app.include_router(tickets.router, responses=errors.DOCUMENTED)
    app.include_router(outbox.router, responses=errors.DOCUMENTED)
    app.include_router(inspections.router, responses=errors.DOCUMENTED)
    app.include_router(webhooks.router, responses=errors.DOCUMENTED)
    # OA callbacks: connectors built on first use (checking a signature needs no network).
    app.state.oa_connectors = {}
    app.include_router(oa.router, responses=errors.DOCUMENTED)
    app.include_router(kb.router, responses=errors.DOCUMENTED)
    app.include_router(reports.router, responses=errors.DOCUMENTED)
    webhooks.warn_unauthenticated(settings)
    app.add_middleware(BodyLimit, limit=settings.http.max_body_bytes)
    return app
