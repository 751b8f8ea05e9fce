"""The small protocol every connector shares: an HTTP client with timeouts, retries on transient
errors only, a circuit breaker, and a TTL cache for lookups.

A new CMDB is one module with a class that has `name` and `find(host, deadline)` (see
`Cmdb`); subclass `HttpConnector` to get the client, retries and breaker for free, and add
its `kind` to `connectors.registry.KINDS`.
"""

from __future__ import annotations

import email.utils
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_random_exponential

from connectors import metrics
from connectors.settings import ConnectorSettings

# A monotonic clock in seconds; tests pass their own (STYLE.md habit 7).
Monotonic = Callable[[], float]
# A server asking for minutes must not park a worker that long.
MAX_RETRY_AFTER = 60.0


@dataclass(frozen=True)
class ConfigItem:
    """A configuration item as the gateway uses it, whatever CMDB it came from."""

    name: str
    kind: str = ""  # device | vm | ...
    owner: str = ""
    group: str = ""
    site: str = ""
    region: str = ""
    tenant: str = ""
    role: str = ""
    status: str = ""
    service: str = ""
    environment: str = ""
    criticality: str = ""
    url: str = ""

    def labels(self) -> dict[str, str]:
        """The ticket labels `cmdb.<attr>` (rule fields `cmdb.<attr>`); empty values left out."""
        return {f"cmdb.{k}": str(v) for k, v in asdict(self).items() if v}


class ConnectorError(Exception):
    """A connector call did not produce an answer."""


class Unavailable(ConnectorError):
    """The system is down or slow (after retries), or the breaker is open: try again later."""


class BreakerOpen(Unavailable):
    """Failed fast without a request: the breaker is open."""


class Refused(ConnectorError):
    """The system answered with a 4xx (bad token, bad query): retrying will not help."""


class Transient(ConnectorError):
    """One attempt failed in a way a retry may fix."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Cmdb(Protocol):
    """What enrichment needs from a CMDB connector."""

    name: str

    def find(self, host: str, deadline: float | None = None) -> ConfigItem | None:
        """The CI for a hostname, FQDN or IP; None if the CMDB has none. Raises ConnectorError.

        `deadline` (on the connector's monotonic clock) bounds the whole call, retries included.
        """
        ...

    def close(self) -> None: ...


class CircuitBreaker:
    """Open after `failures` consecutive failures; after `seconds`, let one trial call through."""

    def __init__(self, failures: int, seconds: float, now: Monotonic = time.monotonic) -> None:
        self.threshold = failures
        self.seconds = seconds
        self.now = now
        self.failures = 0
        self.opened_at: float | None = None

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None and self.now() - self.opened_at < self.seconds

    def check(self) -> None:
        if self.is_open:
            raise BreakerOpen("circuit breaker open")

    def success(self) -> None:
        self.failures, self.opened_at = 0, None

    def failure(self) -> None:
        self.failures += 1
        # A failed half-open trial re-opens at once; otherwise open at the threshold.
        if self.failures >= self.threshold or self.opened_at is not None:
            self.opened_at = self.now()


class TtlCache:
    """Lookup answers (a negative answer is cached too), each for `seconds`, size-bounded."""

    _MISS = object()

    def __init__(self, seconds: float, now: Monotonic = time.monotonic, size: int = 10_000) -> None:
        self.seconds = seconds
        self.now = now
        self.size = size
        self._data: OrderedDict[str, tuple[float, Any]] = OrderedDict()

    def get(self, key: str) -> tuple[bool, Any]:
        """(True, value) on a fresh hit, else (False, None)."""
        entry = self._data.get(key)
        if entry is None or entry[0] <= self.now():
            return False, None
        return True, entry[1]

    def put(self, key: str, value: Any) -> None:
        if self.seconds <= 0:
            return
        self._data[key] = (self.now() + self.seconds, value)
        self._data.move_to_end(key)
        while len(self._data) > self.size:
            self._data.popitem(last=False)


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """RFC 9110 §10.2.3: Retry-After is delay-seconds or an HTTP-date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    delta = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(delta, 0.0), MAX_RETRY_AFTER)


def json_client(settings: ConnectorSettings) -> httpx.Client:
    """The client every connector talks through: its timeout, TLS check, JSON wanted."""
    return httpx.Client(
        timeout=settings.timeout_seconds,
        headers={"Accept": "application/json"},
        verify=settings.verify_tls,
    )


class HttpConnector:
    """An httpx client behind retries (transient errors only) and a circuit breaker.

    `get_json` returns the decoded body, or None for a 404; raises Unavailable or Refused.
    """

    def __init__(
        self,
        name: str,
        settings: ConnectorSettings,
        *,
        now: Monotonic = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = name
        self.settings = settings
        self.now = now
        self.sleep = sleep
        self.client = json_client(settings)
        self.breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_seconds, now)
        metrics.BREAKER_OPEN.labels(name).set(0)
        self.attempts = 0  # HTTP requests sent, for metrics and tests
        self.client.headers.update(self.auth_headers())

    def auth_headers(self) -> dict[str, str]:
        """The headers that authenticate every request; a connector overrides this."""
        return {}

    def close(self) -> None:
        self.client.close()

    def get_json(
        self, url: str, params: Mapping[str, str] | None = None, deadline: float | None = None
    ) -> Any:
        self.breaker.check()
        retrying = Retrying(
            retry=retry_if_exception_type(Transient),
            stop=stop_after_attempt(self.settings.retries + 1) | self._past(deadline),
            wait=self._wait(deadline),
            sleep=self.sleep,
            reraise=True,
        )
        try:
            body = retrying(self._attempt, url, params, deadline)
        except Transient as exc:
            self.breaker.failure()
            metrics.BREAKER_OPEN.labels(self.name).set(1 if self.breaker.is_open else 0)
            raise Unavailable(f"{self.name}: {exc}") from exc
        self.breaker.success()
        metrics.BREAKER_OPEN.labels(self.name).set(0)
        return body

    def _attempt(self, url: str, params: Mapping[str, str] | None, deadline: float | None) -> Any:
        timeout = self.settings.timeout_seconds
        if deadline is not None:
            timeout = max(0.001, min(timeout, deadline - self.now()))
        self.attempts += 1
        try:
            response = self.client.get(url, params=params, timeout=timeout)
        except httpx.TransportError as exc:  # connect errors, timeouts, broken connections
            raise Transient(f"{type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if status == 429:
            after = retry_after_seconds(response.headers.get("Retry-After"))
            raise Transient("429 Too Many Requests", after)
        if status >= 500:
            raise Transient(f"HTTP {status}")
        if status == 404:
            return None
        if status >= 400:
            # 401/403/400: a wrong token or query; retrying would only repeat it.
            raise Refused(f"{self.name}: HTTP {status} for {response.request.url}")
        try:
            return response.json()
        except ValueError as exc:
            raise Refused(f"{self.name}: answer is not JSON ({url})") from exc

    def _past(self, deadline: float | None) -> Callable[[RetryCallState], bool]:
        def stop(state: RetryCallState) -> bool:
            if deadline is None:
                return False
            left = deadline - self.now()
            exc = state.outcome.exception() if state.outcome else None
            after = getattr(exc, "retry_after", None)
            # Do not start a wait the budget cannot cover.
            return left <= 0 or (after is not None and after > left)

        return stop

    def _wait(self, deadline: float | None) -> Callable[[RetryCallState], float]:
        # Full jitter (random up to the exponential step): many daemons retrying one CMDB
        # after a blip do not come back in step.
        backoff = wait_random_exponential(multiplier=self.settings.backoff_seconds, max=5.0)

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            after = getattr(exc, "retry_after", None)
            seconds = after if after is not None else backoff(state)
            if deadline is not None:
                seconds = min(seconds, max(0.0, deadline - self.now()))
            return seconds

        return wait
