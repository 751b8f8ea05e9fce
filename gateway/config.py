"""Typed settings: `gateway.toml` overlaid by `GATEWAY_<SECTION>__<KEY>` environment variables.

One `Settings` object is built at start-up and passed down (STYLE.md habit 6); nothing else in
the project reads the environment.
"""

from __future__ import annotations

import os
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from connectors.settings import (
    CMDB_KINDS,
    OA_KINDS,
    ApprovalsSettings,
    ConnectorSettings,
    EnrichmentSettings,
)
from gateway.inspections.settings import InspectionSettings, unique_names
from gateway.kb.settings import KbSettings
from gateway.reports.settings import ReportSettings
from gateway.sla.holidays import HolidayError
from gateway.sla.policy import Book, build_book
from gateway.sla.settings import SlaSettings, TimeZoneName

DEFAULT_CONFIG_PATH = Path("var/gateway.toml")
TICKET_TYPES = ("incident", "change", "request", "inspection")
PRIORITIES = ("P0", "P1", "P2", "P3")
Role = Literal["requester", "agent", "approver", "admin"]


class Section(BaseModel):
    # A typo in a key must stop start-up, not be silently ignored.
    model_config = ConfigDict(extra="forbid")


class DatabaseSettings(Section):
    url: str = "sqlite:///var/gateway.db"
    # SQLite and single-node deployments migrate at start-up; a PostgreSQL fleet may prefer
    # running `gateway migrate` once from a deploy job.
    auto_migrate: bool = True
    pool_size: int = Field(default=10, ge=1)
    echo: bool = False


class SmtpSettings(Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=2525, ge=0, le=65535)
    addresses: list[str] = Field(default_factory=lambda: ["support@example.com"])
    domains: list[str] = Field(default_factory=list)
    max_message_bytes: int = Field(default=26_214_400, ge=1024)
    hostname: str = "ops-gateway"
    # STARTTLS (RFC 3207) when both are set; `require_tls` refuses mail before STARTTLS.
    tls_cert: str = ""
    tls_key: str = ""
    require_tls: bool = False
    # SMTP AUTH (PLAIN/LOGIN, only after STARTTLS unless auth_require_tls is false).
    auth_required: bool = False
    auth_require_tls: bool = True
    users: dict[str, str] = Field(default_factory=dict)
    # SO_REUSEPORT: several `gateway run` on one host share the SMTP port, the kernel spreading
    # connections among them (one process is one core under the GIL). Each keeps its own HTTP
    # port; on SQLite they queue for the writer through a lock file beside the database.
    reuse_port: bool = False

    @field_validator("addresses", "domains")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        return [v.strip().lower() for v in value]

    @model_validator(mode="after")
    def _consistent(self) -> SmtpSettings:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key go together: set both or neither")
        if self.require_tls and not self.tls_cert:
            raise ValueError("require_tls needs tls_cert and tls_key")
        if self.auth_required and not self.users:
            raise ValueError("auth_required needs at least one entry in users")
        return self


class HttpSettings(Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=5 * 2**20, ge=1024)


class RelaySettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    starttls: bool = False
    ssl: bool = False
    username: str = ""
    password: str = ""
    timeout_seconds: float = Field(default=30.0, gt=0)
    # PEM file of the CA that signed the relay's certificate (an internal CA); "" = the
    # system's trust store. The certificate is always verified.
    ca_file: str = ""


# Notification events and who gets each by default ([outbound.events.NAME] to = [...]).
# Roles name people on the ticket; anything with an "@" is a fixed address.
NOTIFY_EVENTS: dict[str, tuple[str, ...]] = {
    "received": ("requester",),
    "assigned": ("assignee", "group"),
    "commented": ("requester", "participants", "assignee"),
    "pending": ("requester",),
    "resolved": ("requester", "participants"),
    "closed": ("requester",),
    "reopened": ("assignee", "group"),
    "approval_requested": ("approvers",),
    "sla_warning": ("assignee", "group"),
    "sla_breach": ("assignee", "group"),
}
RECIPIENT_ROLES = ("requester", "assignee", "group", "participants", "approvers")
Language = Literal["zh", "en"]


class EventRoute(Section):
    enabled: bool = True
    to: list[str] | None = None  # None: the default recipients of the event

    @field_validator("to")
    @classmethod
    def _known(cls, value: list[str] | None) -> list[str] | None:
        for item in value or ():
            if item not in RECIPIENT_ROLES and "@" not in item:
                raise ValueError(
                    f"unknown recipient {item!r}: use an address or one of {RECIPIENT_ROLES}"
                )
        return value


class ChatRobot(Section):
    """A group robot webhook (企业微信 / 钉钉 / 飞书 / Slack) that gets chosen events."""

    kind: Literal["wecom", "dingtalk", "feishu", "slack"]
    url: str = Field(min_length=8)
    secret: str = ""  # DingTalk and Feishu signing secret ("" = unsigned robot)
    events: list[str] = Field(default_factory=lambda: ["received", "sla_breach"])
    min_priority: Literal["P0", "P1", "P2", "P3"] = "P1"  # only this priority or more urgent
    language: Language | None = None  # None: [outbound] language

    @field_validator("events")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(NOTIFY_EVENTS))
        if unknown:
            raise ValueError(f"unknown event(s) {unknown}; known: {', '.join(NOTIFY_EVENTS)}")
        return value


class OutboundSettings(Section):
    # Off by default so `make run` works without a relay; notifications are only queued (and
    # sent) when this is true.
    enabled: bool = False
    from_address: str = "support@example.com"
    from_name: str = "IT Operations"
    # Base of the signed reply addresses (support+KEY.token@...); "" = first [smtp] address.
    reply_to: str = ""
    language: Language = "zh"
    # Per-recipient language: an address or a whole domain -> "zh" | "en".
    languages: dict[str, Language] = Field(default_factory=dict)
    # A folder with zh/ and en/ subfolders whose templates replace the shipped ones.
    templates_dir: str = ""
    # The mailbox of a group (queue), for the "group" recipient.
    group_addresses: dict[str, str] = Field(default_factory=dict)
    # Storm control: acknowledgements per recipient per hour (stops two systems answering
    # each other), and mails per recipient per hour beyond which updates wait for a digest.
    ack_limit_per_hour: int = Field(default=5, ge=0)
    rate_limit_per_hour: int = Field(default=30, ge=1)
    digest_minutes: float = Field(default=15.0, gt=0)
    # Delivery: a bounded batch under a lease, backoff with jitter and a cap, dead letter.
    batch: int = Field(default=10, ge=1, le=1000)
    poll_seconds: float = Field(default=2.0, gt=0)
    # Claimed rows are held this long, renewed every third of it while the worker lives
    # (gateway/outbound/worker.py): a dead process's rows are taken over within this time.
    lease_seconds: float = Field(default=30.0, ge=3.0)
    max_attempts: int = Field(default=10, ge=1)
    max_age_hours: float = Field(default=48.0, gt=0)
    backoff_initial_seconds: float = Field(default=30.0, gt=0)
    backoff_max_seconds: float = Field(default=3600.0, gt=0)
    events: dict[str, EventRoute] = Field(default_factory=dict)
    chat: dict[str, ChatRobot] = Field(default_factory=dict)
    smtp: RelaySettings = Field(default_factory=RelaySettings)

    @field_validator("events")
    @classmethod
    def _events(cls, value: dict[str, EventRoute]) -> dict[str, EventRoute]:
        unknown = sorted(set(value) - set(NOTIFY_EVENTS))
        if unknown:
            raise ValueError(f"unknown event(s) {unknown}; known: {', '.join(NOTIFY_EVENTS)}")
        return value

    def route(self, event: str) -> tuple[bool, tuple[str, ...]]:
        """Whether `event` is mailed, and to whom (roles and addresses)."""
        cfg = self.events.get(event)
        if cfg is None:
            return True, NOTIFY_EVENTS[event]
        return cfg.enabled, tuple(cfg.to) if cfg.to is not None else NOTIFY_EVENTS[event]


Priority = Literal["P0", "P1", "P2", "P3"]


def _lower_keys(value: dict[str, Priority]) -> dict[str, Priority]:
    # Monitoring tools spell severities in any case ("Critical", "HIGH"); match them folded.
    return {k.strip().casefold(): v for k, v in value.items()}


class WebhookSource(Section):
    """One alert source: who may post, and how its alerts become tickets."""

    # Bearer token, or HTTP basic username + password; all empty = no auth (a start-up warning).
    token: str = ""
    username: str = ""
    password: str = ""
    # Severity (label/field value, case-insensitive) -> ticket priority; rules may refine it.
    severity_map: Annotated[dict[str, Priority], AfterValidator(_lower_keys)] = Field(
        default_factory=lambda: {
            "critical": "P0", "disaster": "P0", "high": "P1", "error": "P1", "major": "P1",
            "warning": "P2", "average": "P2", "minor": "P2", "info": "P3", "low": "P3",
        }
    )  # fmt: skip
    # Priority for a severity the map does not name (or none at all).
    default_priority: Priority = "P2"
    # On recovery: "resolve" the ticket (with the recovery time) or only "comment" on it.
    resolve_action: Literal["resolve", "comment"] = "resolve"
    # A new firing within this time after the ticket was resolved reopens it; later, a new
    # ticket linked to the old one is opened. Seconds or ISO 8601 ("PT1H").
    reopen_window: timedelta = timedelta(hours=1)
    # Labels whose values put alerts into one ticket (e.g. ["alertname", "cluster"]);
    # empty = one ticket per alert.
    group_by: list[str] = Field(default_factory=list)
    # Raw request bodies kept in raw_messages: "all", or only those that could not be parsed
    # ("invalid"; the parsed alerts live on in tickets and the ledger). Storing a 30 KB body
    # is the largest single cost of a storm batch on SQLite (bench/RESULTS.md).
    keep_raw: Literal["all", "invalid"] = "all"

    @property
    def auth_required(self) -> bool:
        return bool(self.token or self.username or self.password)


class AlertmanagerSource(WebhookSource):
    pass


class ZabbixSource(WebhookSource):
    # Zabbix's own severity names (Disaster .. Not classified).
    severity_map: Annotated[dict[str, Priority], AfterValidator(_lower_keys)] = Field(
        default_factory=lambda: {
            "disaster": "P0", "high": "P1", "average": "P2", "warning": "P3",
            "information": "P3", "not classified": "P3",
        }
    )  # fmt: skip
    default_priority: Priority = "P3"


class GenericSource(WebhookSource):
    """`[webhooks.generic.NAME]`: where the alert fields sit in any JSON body.

    Every mapping value is an RFC 6901 JSON pointer ("/labels/severity"); `alerts` is
    relative to the body, the others to each alert ("" = the body is one alert).
    """

    alerts: str = ""
    fingerprint: str = Field(min_length=1)
    status: str = ""
    # Values of `status` that mean "recovered" (compared case-insensitively).
    resolved_values: list[str] = Field(default_factory=lambda: ["resolved", "ok", "recovered"])
    summary: str = ""
    description: str = ""
    severity: str = ""
    host: str = ""
    url: str = ""
    # An object whose string values become ticket labels (rule fields `labels.<name>`).
    labels: str = ""

    @field_validator("alerts", "fingerprint", "status", "summary", "description", "severity",
                     "host", "url", "labels")  # fmt: skip
    @classmethod
    def _pointer(cls, value: str) -> str:
        if value and not value.startswith("/"):
            raise ValueError(f"{value!r} is not a JSON pointer (RFC 6901: starts with '/')")
        return value

    @field_validator("resolved_values")
    @classmethod
    def _fold(cls, value: list[str]) -> list[str]:
        return [v.strip().casefold() for v in value]


class WebhooksSettings(Section):
    alertmanager: AlertmanagerSource = Field(default_factory=AlertmanagerSource)
    zabbix: ZabbixSource = Field(default_factory=ZabbixSource)
    generic: dict[str, GenericSource] = Field(default_factory=dict)


class ApiToken(Section):
    token: str = Field(min_length=16)
    role: Role
    email: str

    @field_validator("email")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.strip().lower()


class ApiSettings(Section):
    tokens: dict[str, ApiToken] = Field(default_factory=dict)


class TicketSettings(Section):
    key_prefixes: dict[str, str] = Field(
        default_factory=lambda: {
            "incident": "INC",
            "change": "CHG",
            "request": "REQ",
            "inspection": "INS",
        }
    )
    key_digits: int = Field(default=6, ge=3, le=12)
    default_type: Literal["incident", "change", "request", "inspection"] = "request"
    default_priority: Literal["P0", "P1", "P2", "P3"] = "P3"
    default_group: str = "service-desk"
    max_attachment_bytes: int = Field(default=10 * 2**20, ge=0)
    max_attachments: int = Field(default=20, ge=0)

    @field_validator("key_prefixes")
    @classmethod
    def _prefixes(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = set(value) - set(TICKET_TYPES)
        if unknown:
            raise ValueError(f"unknown ticket type(s) {sorted(unknown)}; known: {TICKET_TYPES}")
        for prefix in value.values():
            if not prefix.isalnum() or not prefix.isupper():
                raise ValueError(f"prefix {prefix!r} must be upper-case letters/digits")
        return {**cls.model_fields["key_prefixes"].default_factory(), **value}  # type: ignore[misc]


class RepliesSettings(Section):
    """Reply-to-update: how a mail finds its ticket and what a reply may do."""

    # HMAC key for signed reply addresses (support+KEY.token@…); `gateway init` writes a random
    # one. Empty disables signed addresses (threading still uses Message-IDs and [KEY] tags).
    secret: str = ""
    # Addresses that may update any ticket by mail (besides agent/admin API token holders).
    agents: list[str] = Field(default_factory=list)
    # A requester's reply to a resolved ticket: rejection reopens it, acceptance closes it.
    accept_words: list[str] = Field(
        default_factory=lambda: [
            "已解决", "已修复", "已恢复", "确认解决", "可以关闭", "没问题了",
            "confirmed", "fixed", "resolved", "works now", "it works", "please close",
        ]
    )  # fmt: skip
    reject_words: list[str] = Field(
        default_factory=lambda: [
            "未解决", "没解决", "没有解决", "未修复", "还是不行", "仍然", "依旧", "问题还在",
            "not fixed", "not resolved", "still broken", "still not", "still failing",
            "doesn't work", "does not work", "not working",
        ]
    )  # fmt: skip
    # An approver's reply to an approval request: approve or reject their step of the chain
    # (refusal wins when both appear: "不同意" contains "同意").
    approve_words: list[str] = Field(
        default_factory=lambda: ["同意", "批准", "通过", "approve", "approved", "lgtm"]
    )
    deny_words: list[str] = Field(
        default_factory=lambda: [
            "不同意", "驳回", "拒绝", "不批准", "reject", "rejected", "deny", "denied",
        ]
    )  # fmt: skip

    @field_validator("agents")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        return [v.strip().lower() for v in value]


class ImapMailbox(Section):
    """One mailbox the IMAP poller watches (`[[imap]]` tables; any number of them)."""

    name: str = Field(min_length=1)  # for logs and the `mailbox` metric label
    host: str
    port: int = Field(default=993, ge=1, le=65535)
    ssl: bool = True  # implicit TLS (RFC 8314); port 143 with starttls for RFC 2595
    starttls: bool = False
    username: str
    password: str
    folder: str = "INBOX"
    # Where a message goes once its ticket change is committed; "" only flags it \Seen.
    processed_folder: str = "Processed"
    # Where a message that could not be parsed goes (its raw bytes are also kept in the
    # store); "" only flags it \Seen.
    quarantine_folder: str = "Quarantine"
    poll_seconds: float = Field(default=30.0, gt=0)
    idle: bool = True  # use IDLE (RFC 2177) when the server offers it
    batch: int = Field(default=50, ge=1, le=10_000)

    @model_validator(mode="after")
    def _consistent(self) -> ImapMailbox:
        if self.ssl and self.starttls:
            raise ValueError("ssl and starttls are exclusive: ssl is TLS from the first byte")
        if self.folder in (self.processed_folder, self.quarantine_folder):
            raise ValueError(f"folder {self.folder!r} cannot also be where messages are moved")
        return self

    @staticmethod
    def unique_names(mailboxes: list[ImapMailbox]) -> list[ImapMailbox]:
        names = [m.name for m in mailboxes]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"mailbox names must be unique; repeated: {', '.join(repeated)}")
        return mailboxes


class RulesSettings(Section):
    path: str = "rules.yaml"
    watch_seconds: float = Field(default=5.0, ge=0)


class DaemonSettings(Section):
    timezone: TimeZoneName = "Asia/Shanghai"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    drain_seconds: float = Field(default=15.0, ge=0)
    # Threads for blocking side work off the event loop (rule reloads). SMTP intake is parsed
    # and stored by the group-commit writer (gateway/group_commit.py), not by these.
    intake_workers: int = Field(default=4, ge=1, le=64)
    # How often the inspection scheduler looks for due fire times; 0 = no scheduler here.
    inspection_poll_seconds: float = Field(default=30.0, ge=0)
    # Singleton work (each [[imap]] mailbox) is held under a lease in the database for this
    # long and renewed every third of it; a process that dies is replaced within about this.
    lease_seconds: float = Field(default=15.0, ge=1.0, le=3600.0)


class _DictSource(PydanticBaseSettingsSource):
    """Feeds the parsed TOML file in below the environment variables."""

    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._data = data

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_",
        env_nested_delimiter="__",
        case_sensitive=False,
        # GATEWAY_CONFIG and test variables share the prefix; top-level TOML keys are checked
        # separately in load_settings().
        extra="ignore",
    )

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    outbound: OutboundSettings = Field(default_factory=OutboundSettings)
    webhooks: WebhooksSettings = Field(default_factory=WebhooksSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    tickets: TicketSettings = Field(default_factory=TicketSettings)
    rules: RulesSettings = Field(default_factory=RulesSettings)
    replies: RepliesSettings = Field(default_factory=RepliesSettings)
    imap: Annotated[list[ImapMailbox], AfterValidator(ImapMailbox.unique_names)] = Field(
        default_factory=list
    )
    daemon: DaemonSettings = Field(default_factory=DaemonSettings)
    sla: SlaSettings = Field(default_factory=SlaSettings)
    # [connectors.NAME]: external systems (CMDB ...), each with kind = "netbox" | "rest".
    connectors: dict[str, ConnectorSettings] = Field(default_factory=dict)
    enrichment: EnrichmentSettings = Field(default_factory=EnrichmentSettings)
    # [approvals] oa = NAME: the OA connector that runs change approvals ("" = API/mail only).
    approvals: ApprovalsSettings = Field(default_factory=ApprovalsSettings)
    # [[inspections]]: schedules that create inspection tickets (gateway/ingest/inspections.py).
    inspections: Annotated[list[InspectionSettings], AfterValidator(unique_names)] = Field(
        default_factory=list
    )
    kb: KbSettings = Field(default_factory=KbSettings)
    reports: ReportSettings = Field(default_factory=ReportSettings)

    # Where the file was read from; relative paths in it (rules.path) resolve against it.
    config_dir: Path = Path(".")

    # The compiled [sla] section and the object it was compiled from (a copy of the settings
    # with another `sla` compiles its own).
    _sla_book: tuple[SlaSettings, Book] | None = PrivateAttr(default=None)

    def sla_book(self) -> Book:
        """`[sla]` compiled (holiday files read) once; raises HolidayError on a bad file."""
        if self._sla_book is None or self._sla_book[0] is not self.sla:
            self._sla_book = (self.sla, build_book(self.sla, self.config_dir))
        return self._sla_book[1]

    @model_validator(mode="after")
    def _connectors_named(self) -> Settings:
        _kind_of("enrichment.cmdb", self.enrichment.cmdb, self.connectors, CMDB_KINDS)
        _kind_of("approvals.oa", self.approvals.oa, self.connectors, OA_KINDS)
        return self

    @model_validator(mode="after")
    def _inspection_calendars(self) -> Settings:
        for spec in self.inspections:
            if spec.working_days_only and spec.calendar not in self.sla.calendars:
                known = ", ".join(sorted(self.sla.calendars))
                raise ValueError(
                    f"inspection {spec.name!r}: calendar {spec.calendar!r} names no "
                    f"[sla.calendars.{spec.calendar}] (known: {known})"
                )
        return self

    @model_validator(mode="after")
    def _report_calendar_known(self) -> Settings:
        if self.reports.calendar and self.reports.calendar not in self.sla.calendars:
            known = ", ".join(sorted(self.sla.calendars))
            raise ValueError(f"reports.calendar = {self.reports.calendar!r} is unknown ({known})")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.daemon.timezone)

    @property
    def rules_path(self) -> Path:
        path = Path(self.rules.path)
        return path if path.is_absolute() else self.config_dir / path


def _kind_of(
    key: str, name: str, connectors: dict[str, ConnectorSettings], kinds: tuple[str, ...]
) -> None:
    """`key` names a [connectors.NAME] of one of `kinds` (or is "")."""
    if not name:
        return
    if name not in connectors:
        known = ", ".join(sorted(connectors)) or "none configured"
        raise ValueError(f"{key} = {name!r} names no [connectors.{name}] ({known})")
    if connectors[name].kind not in kinds:
        raise ValueError(
            f"{key} = {name!r} is a connector of kind {connectors[name].kind!r}; it needs kind "
            f"{' or '.join(repr(k) for k in kinds)}"
        )


class ConfigError(Exception):
    """The configuration cannot be used; the message names the file, key and problem."""


def resolve_config_path(cli_value: str | None, environ: dict[str, str] | None = None) -> Path:
    """`--config`, else `$GATEWAY_CONFIG`, else `./var/gateway.toml` (CONTRACT.md)."""
    env = os.environ if environ is None else environ
    if cli_value:
        return Path(cli_value)
    if env.get("GATEWAY_CONFIG"):
        return Path(env["GATEWAY_CONFIG"])
    return DEFAULT_CONFIG_PATH


def load_settings(path: Path | None, *, require_file: bool = True) -> Settings:
    """Read the TOML file, apply environment overrides and validate; raise ConfigError."""
    data: dict[str, Any] = {}
    name = str(path) if path else "<defaults>"
    if path is not None:
        if path.exists():
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{name}: {exc}") from exc
            except UnicodeDecodeError as exc:
                raise ConfigError(f"{name}: not UTF-8 text ({exc.reason})") from exc
        elif require_file:
            raise ConfigError(f"{name}: no such file (run `gateway init` to write one)")
    known = set(Settings.model_fields) - {"config_dir"}
    for key in data:
        if key not in known:
            raise ConfigError(f"{name}: unknown section [{key}]; known: {', '.join(sorted(known))}")

    class _FromFile(Settings):
        # pydantic-settings builds its sources from the class, so the file's data rides on a
        # throwaway subclass; precedence: environment over file over defaults.
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (init_settings, env_settings, _DictSource(settings_cls, data))

    try:
        settings = _FromFile(config_dir=path.parent if path else Path("."))
    except ValidationError as exc:
        raise ConfigError(_describe(name, exc)) from exc
    if settings.sla.enabled:
        # Read the holiday files now, so a bad one stops start-up with a message naming the
        # file and entry, not with a traceback from the first SLA scan.
        try:
            settings.sla_book()
        except HolidayError as exc:
            raise ConfigError(f"{name}: [sla]: {exc}") from exc
    return settings


def _describe(name: str, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        value = err.get("input")
        shown = "" if isinstance(value, dict) else f" (got {value!r})"
        lines.append(f"{name}: {key}: {err['msg']}{shown}")
    return "\n".join(lines)
