"""Delivery outcomes and what follows a failure: a pure retry policy (STYLE.md habit 12).

Transient failures (connection refused, timeouts, SMTP 4xx, HTTP 5xx/429) are retried with
exponential backoff, jitter and a cap; permanent ones (SMTP 5xx, HTTP 4xx, a vendor's refusal)
go to the dead letters at once, as does a row past `max_attempts` or `max_age_hours`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from tenacity import wait_exponential, wait_random

from gateway.config import OutboundSettings


@dataclass(frozen=True)
class Sent:
    # What the receiver answered that must be kept (a connector call's instance id).
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Failed:
    error: str
    permanent: bool = False


Outcome = Sent | Failed


@dataclass(frozen=True)
class RetryAt:
    at: datetime


@dataclass(frozen=True)
class Dead:
    reason: str


def backoff_seconds(attempts: int, cfg: OutboundSettings) -> float:
    """Delay before attempt `attempts + 1`: initial x 2^(attempts-1) plus jitter, capped."""
    # Jitter spreads the retries of many rows that failed together (a relay outage).
    wait = wait_exponential(
        multiplier=cfg.backoff_initial_seconds, max=cfg.backoff_max_seconds
    ) + wait_random(0, cfg.backoff_initial_seconds)
    # tenacity's wait strategies only read attempt_number from the retry state; the state of
    # our retries lives in the outbox row, not in a tenacity loop.
    state: Any = SimpleNamespace(attempt_number=max(1, attempts))
    return min(float(wait(state)), cfg.backoff_max_seconds)


def after_failure(
    failure: Failed, attempts: int, created_at: datetime, now: datetime, cfg: OutboundSettings
) -> RetryAt | Dead:
    """`attempts` counts the one that just failed."""
    if failure.permanent:
        return Dead(f"permanent failure: {failure.error}")
    if attempts >= cfg.max_attempts:
        return Dead(f"gave up after {attempts} attempts: {failure.error}")
    if now - created_at >= timedelta(hours=cfg.max_age_hours):
        return Dead(f"gave up after {cfg.max_age_hours:g} hours: {failure.error}")
    return RetryAt(now + timedelta(seconds=backoff_seconds(attempts, cfg)))


__all__ = ["Dead", "Failed", "Outcome", "RetryAt", "Sent", "after_failure"]
