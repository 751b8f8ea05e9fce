"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway import metrics

router = APIRouter()


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Not ready (same body)"}})
def readyz(request: Request) -> JSONResponse:
    db_ok = request.app.state.db.ping()
    accepting = request.app.state.accepting()
    ready = db_ok and accepting
    metrics.READY.set(1 if ready else 0)
    body = {"status": "ready" if ready else "not ready", "database": db_ok, "accepting": accepting}
    return JSONResponse(body, status_code=200 if ready else 503)


# The schema says what is really sent (schemathesis checks responses against it).
@router.get("/metrics", response_class=PlainTextResponse)
def prometheus_metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
