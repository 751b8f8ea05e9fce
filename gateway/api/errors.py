"""Every API error is JSON: {"error": code, "message": text}."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.storage.db import StoreUnavailable


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


class ErrorBody(BaseModel):
    """What every error answer carries; some add fields (`field`, `problems`)."""

    model_config = ConfigDict(extra="allow")
    error: str
    message: str


# The error answers of the API and webhook routes, for the OpenAPI schema: clients (and
# schemathesis) can then tell a documented refusal from a surprise.
DOCUMENTED: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in {
        400: "Invalid request (the body names the field)",
        401: "Missing or wrong token",
        403: "The token's role may not do this",
        404: "No such ticket, outbox row or webhook source",
        409: "Not possible in the current state",
        413: "Body larger than [http] max_body_bytes",
        503: "Ticket store unavailable; retry later (Retry-After)",
    }.items()
}


def _body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": code, "message": message, **extra}


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(_body(exc.code, exc.message, **exc.extra), exc.status, headers)

    @app.exception_handler(StoreUnavailable)
    async def _store(_: Request, exc: StoreUnavailable) -> JSONResponse:
        return JSONResponse(
            _body("unavailable", "ticket store unavailable, retry later"),
            503,
            {"Retry-After": "30"},
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in exc.errors()
        ]
        return JSONResponse(_body("invalid", "request is not valid", problems=problems), 400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(_body("http_error", str(exc.detail)), exc.status_code)
