"""Bearer tokens from the config, checked in constant time, and the roles they carry."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import Request

from gateway.api.errors import ApiError
from gateway.config import ApiToken


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    email: str


class TokenAuth:
    def __init__(self, tokens: dict[str, ApiToken]) -> None:
        self._tokens = [(name, t.token.encode(), t) for name, t in tokens.items()]

    def authenticate(self, header: str | None) -> Principal | None:
        if not header or not header.lower().startswith("bearer "):
            return None
        offered = header[7:].strip().encode()
        found: Principal | None = None
        # Compare against every token without stopping early: timing tells nothing about
        # which token (or how much of one) matched.
        for name, secret, token in self._tokens:
            if hmac.compare_digest(offered, secret):
                found = Principal(name=name, role=token.role, email=token.email)
        return found


def principal(request: Request) -> Principal:
    """FastAPI dependency: the caller, or 401."""
    auth: TokenAuth = request.app.state.auth
    who = auth.authenticate(request.headers.get("authorization"))
    if who is None:
        raise ApiError(401, "unauthorized", "missing or invalid bearer token")
    return who


def require(who: Principal, *roles: str) -> None:
    if who.role not in roles:
        raise ApiError(
            403, "forbidden", f"role {who.role!r} may not do this (needs {'/'.join(roles)})"
        )
