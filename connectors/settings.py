"""Typed `[connectors.NAME]` and `[enrichment]` sections (gateway.config holds them)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# The ConfigItem attributes a connector can fill (see connectors.base.ConfigItem).
CI_FIELDS = (
    "name",
    "kind",
    "owner",
    "group",
    "site",
    "region",
    "tenant",
    "role",
    "status",
    "service",
    "environment",
    "criticality",
    "url",
)


class _Section(BaseModel):
    # A typo in a key must stop start-up, not be silently ignored.
    model_config = ConfigDict(extra="forbid")


class ConnectorSettings(_Section):
    """One external system. `kind` picks the module; the rest are shared knobs."""

    kind: Literal["netbox", "rest"]
    url: str = Field(min_length=1)  # netbox: the base URL; rest: a template with {host}
    token: str = ""
    timeout_seconds: float = Field(default=2.0, gt=0)
    # Retries after the first attempt, on transient errors only (connect, timeout, 429, 5xx).
    retries: int = Field(default=2, ge=0, le=10)
    backoff_seconds: float = Field(default=0.1, ge=0)
    # After this many failed lookups in a row the breaker opens for breaker_seconds: lookups
    # then fail at once, so an outage of the CMDB never slows intake.
    breaker_failures: int = Field(default=5, ge=1)
    breaker_seconds: float = Field(default=30.0, gt=0)
    cache_seconds: float = Field(default=300.0, ge=0)
    verify_tls: bool = True
    # netbox: ConfigItem attribute -> custom field name (custom_fields.<name>).
    custom_fields: dict[str, str] = Field(
        default_factory=lambda: {
            "service": "service",
            "criticality": "criticality",
            "owner": "owner",
            "environment": "environment",
        }
    )
    # rest: where the item (or a list of items: the first is taken) is in the answer, and
    # ConfigItem attribute -> RFC 6901 JSON pointer inside the item.
    results: str = ""
    fields: dict[str, str] = Field(default_factory=dict)
    auth_header: str = "Authorization"
    auth_scheme: str = "Bearer"

    @model_validator(mode="after")
    def _mapping(self) -> ConnectorSettings:
        unknown = (set(self.fields) | set(self.custom_fields)) - set(CI_FIELDS)
        if unknown:
            raise ValueError(
                f"unknown CI attribute {', '.join(sorted(unknown))}; known: {', '.join(CI_FIELDS)}"
            )
        if self.kind == "rest" and "{host}" not in self.url:
            raise ValueError("a rest connector's url needs {host} where the host name goes")
        return self


class EnrichmentSettings(_Section):
    cmdb: str = ""  # a [connectors.NAME]; "" = no CMDB enrichment
    # The whole time intake may spend on lookups per delivery (a mail batch shares it); what
    # does not fit is looked up later by the retry job.
    budget_ms: int = Field(default=200, ge=1)
    retry_seconds: float = Field(default=60.0, gt=0)
    max_attempts: int = Field(default=20, ge=1)
    # Hostnames/IPs taken from mail text: a pasted inventory must not cost 500 lookups.
    max_text_hosts: int = Field(default=3, ge=0)
