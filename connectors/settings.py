"""Typed `[connectors.NAME]`, `[enrichment]` and `[approvals]` sections (gateway.config holds
them)."""

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
CMDB_KINDS = ("netbox", "rest")
OA_KINDS = ("oa_rest", "dingtalk")
# A DingTalk EncodingAESKey is 43 base64 characters: 32 bytes once "=" is added.
AES_KEY_CHARS = 43
DINGTALK_API = "https://api.dingtalk.com"


class _Section(BaseModel):
    # A typo in a key must stop start-up, not be silently ignored.
    model_config = ConfigDict(extra="forbid")


class ConnectorSettings(_Section):
    """One external system. `kind` picks the module; the rest are shared knobs."""

    kind: Literal["netbox", "rest", "oa_rest", "dingtalk"]
    # netbox, oa_rest: the base URL; rest: a template with {host}; dingtalk: the API's base
    # (https://api.dingtalk.com when left out).
    url: str = ""
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

    # OA approvals (kind = "oa_rest" | "dingtalk"); see connectors/oa.py.
    # oa_rest: the HMAC key of signed callbacks (and of the status pushes we sign);
    # callbacks older or newer than replay_seconds are refused.
    callback_secret: str = ""
    replay_seconds: int = Field(default=300, ge=10)
    # oa_rest: where ticket status changes are POSTed (through the outbox); "" = none.
    status_url: str = ""
    # Ticket types whose status changes are pushed.
    status_types: list[str] = Field(default_factory=lambda: ["change"])
    # dingtalk: the app's credentials, the approval form's process code, and the event
    # subscription's token and EncodingAESKey (43 characters). owner_key is the key the
    # events are encrypted for: the app key for an app's event subscription (the default),
    # the corpId for callbacks registered through the old call_back API.
    app_key: str = ""
    app_secret: str = ""
    process_code: str = ""
    callback_token: str = ""
    aes_key: str = ""
    owner_key: str = ""
    # dingtalk: approver/requester e-mail -> DingTalk userId; the originator's userId when
    # the requester has none in the map; the originator's department (-1 = root) if needed.
    user_ids: dict[str, str] = Field(default_factory=dict)
    originator: str = ""
    dept_id: int | None = None
    # dingtalk: form component name -> text with {key}, {subject}, {description},
    # {priority}, {requester}, {type}; the names must be your approval form's components.
    form: dict[str, str] = Field(
        default_factory=lambda: {"标题": "[{key}] {subject}", "内容": "{description}"}
    )

    @property
    def is_oa(self) -> bool:
        return self.kind in OA_KINDS

    @model_validator(mode="after")
    def _mapping(self) -> ConnectorSettings:
        if self.kind == "dingtalk":
            self._dingtalk()
        elif not self.url:
            raise ValueError(f"a {self.kind} connector needs url")
        if self.kind == "oa_rest" and not self.callback_secret:
            raise ValueError("an oa_rest connector needs callback_secret (signs its callbacks)")
        unknown = (set(self.fields) | set(self.custom_fields)) - set(CI_FIELDS)
        if unknown:
            raise ValueError(
                f"unknown CI attribute {', '.join(sorted(unknown))}; known: {', '.join(CI_FIELDS)}"
            )
        if self.kind == "rest" and "{host}" not in self.url:
            raise ValueError("a rest connector's url needs {host} where the host name goes")
        return self

    def _dingtalk(self) -> None:
        missing = [
            k
            for k in ("app_key", "app_secret", "process_code", "callback_token", "aes_key")
            if not getattr(self, k)
        ]
        if missing:
            raise ValueError(f"a dingtalk connector needs {', '.join(missing)}")
        if len(self.aes_key) != AES_KEY_CHARS:
            raise ValueError(
                f"aes_key must be the {AES_KEY_CHARS}-character EncodingAESKey "
                f"(got {len(self.aes_key)} characters)"
            )
        self.url = self.url or DINGTALK_API
        self.owner_key = self.owner_key or self.app_key
        self.user_ids = {k.lower(): v for k, v in self.user_ids.items()}


class EnrichmentSettings(_Section):
    cmdb: str = ""  # a [connectors.NAME]; "" = no CMDB enrichment
    # The whole time intake may spend on lookups per delivery (a mail batch shares it); what
    # does not fit is looked up later by the retry job.
    budget_ms: int = Field(default=200, ge=1)
    retry_seconds: float = Field(default=60.0, gt=0)
    max_attempts: int = Field(default=20, ge=1)
    # Hostnames/IPs taken from mail text: a pasted inventory must not cost 500 lookups.
    max_text_hosts: int = Field(default=3, ge=0)


class ApprovalsSettings(_Section):
    # The [connectors.NAME] (kind oa_rest or dingtalk) that runs change approvals; "" = none:
    # approvers decide by API or by replying to the approval mail.
    oa: str = ""
