"""The one YAML config file: sources, routes, destinations and retry policies, validated at start.

Loading happens in three steps, each reporting every problem as ``path: reason``:

1. YAML is read (a syntax error names its line);
2. ``${NAME}`` references are replaced from the environment (secrets live only there);
   ``${NAME:-default}`` gives a default for settings that are not secrets;
3. the result is validated by the pydantic models below, then cross-checked (routes name
   known sources and destinations, destinations name known retry policies).

`carebridge run` without ``-c`` uses `engine/defaults.yaml`, embedded in the package.
"""

from __future__ import annotations

import os
import re
import zoneinfo
from collections.abc import Mapping
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from engine.alerts import AlertsConfig
from engine.console.config import ConsoleConfig
from engine.durations import Duration
from mappings.clinical.follow_up import DEFAULT_RULES, FollowUpRule, RuleError, rules_from_mapping
from mappings.model import CareSetting, EventKind
from mappings.profile import FeedProfile, ProfileError

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class ConfigError(Exception):
    """The config is invalid; `problems` holds one ``path: reason`` line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


Name = Annotated[str, Field(pattern=NAME_PATTERN)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsConfig(_Strict):
    """TLS for a client connection (AMQP or PostgreSQL)."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    verify: bool = True
    server_hostname: str | None = None


class AmqpConfig(_Strict):
    url: str = "amqp://guest:guest@localhost:5672/"
    prefetch: int = Field(default=200, ge=1, le=65535)
    heartbeat: Duration = timedelta(seconds=30)
    confirm_timeout: Duration = timedelta(seconds=15)
    delivery_limit: int = Field(default=10, ge=1)
    """Quorum queue `x-delivery-limit`: a message that crashes the engine this often is parked."""
    tls: TlsConfig | None = None


class StoreConfig(_Strict):
    url: str = "sqlite+aiosqlite:///carebridge.db"
    tls: TlsConfig | None = None
    pool_size: int = Field(default=5, ge=1)

    @field_validator("url")
    @classmethod
    def _supported_driver(cls, url: str) -> str:
        if not url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return url


class HttpConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)


class IntakeConfig(_Strict):
    batch_size: int = Field(default=100, ge=1, le=1000)
    """Messages committed in one store transaction at most (each still atomic on its own)."""
    max_message_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    """A larger message is rejected (and kept): no ADT or FHIR message of one event is this big."""


class DeliveryConfig(_Strict):
    concurrency: int = Field(default=32, ge=1)
    per_destination: int = Field(default=16, ge=1)
    """Most deliveries in flight to one destination (an MLLP destination always takes one at a
    time: its link is serial), so a slow destination cannot hold every slot."""
    batch_size: int = Field(default=100, ge=1)
    poll_interval: Duration = timedelta(seconds=1)
    lease: Duration = timedelta(seconds=120)
    """How long a claimed delivery is reserved; must exceed a destination's timeout."""


class ShutdownConfig(_Strict):
    deadline: Duration = timedelta(seconds=20)
    """On SIGTERM, in-flight deliveries get this long to finish; then their leases are released."""


class RetentionConfig(_Strict):
    message_log: Duration | None = timedelta(days=90)
    """Settled messages older than this are pruned with their events, deliveries and attempts;
    null keeps everything. Pending deliveries, dead letters and rejected messages are kept."""
    interval: Duration = timedelta(hours=1)
    batch: int = Field(default=1000, ge=1)


class LoggingConfig(_Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] = "json"


class RetryPolicy(_Strict):
    """Quick in-process retries first, then durable rescheduling with backoff and jitter."""

    quick_attempts: int = Field(default=3, ge=1, le=10)
    quick_wait: Duration = timedelta(milliseconds=200)
    initial_backoff: Duration = timedelta(seconds=5)
    max_backoff: Duration = timedelta(minutes=15)
    multiplier: float = Field(default=2.0, ge=1.0)
    jitter: float = Field(default=0.2, ge=0.0, le=1.0)
    max_attempts: int | None = Field(default=None, ge=1)
    max_age: Duration | None = timedelta(hours=72)

    @model_validator(mode="after")
    def _bounded(self) -> RetryPolicy:
        if self.max_attempts is None and self.max_age is None:
            raise ValueError("set max_attempts or max_age, or a delivery could retry forever")
        if self.max_backoff < self.initial_backoff:
            raise ValueError("max_backoff must not be shorter than initial_backoff")
        return self


class ServerTlsConfig(_Strict):
    """TLS for a listener: its certificate and, to check client certificates, a CA."""

    cert_file: Path
    key_file: Path
    ca_file: Path | None = None
    require_client_cert: bool = False

    @model_validator(mode="after")
    def _client_certs_need_a_ca(self) -> ServerTlsConfig:
        if self.require_client_cert and self.ca_file is None:
            raise ValueError("require_client_cert needs ca_file, the CA that signs client certs")
        return self


class MllpListenerConfig(_Strict):
    """An MLLP listener for one source: HL7v2 over TCP, answered only after the broker has it."""

    host: str = "127.0.0.1"
    port: int = Field(ge=0, le=65535)
    max_message_bytes: int = Field(default=1024 * 1024, ge=1024)
    frame_timeout: Duration = timedelta(seconds=30)
    idle_timeout: Duration = timedelta(minutes=10)
    max_connections: int = Field(default=32, ge=1)
    tls: ServerTlsConfig | None = None
    allowed_client_names: list[str] | None = None
    """With client certificates: the certificate common names allowed to send for this source."""


class FhirListenerConfig(_Strict):
    """The FHIR HTTP endpoint: `POST /fhir/{source}` for every source that has `fhir` set."""

    host: str = "127.0.0.1"
    port: int = Field(ge=0, le=65535)
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    tls: ServerTlsConfig | None = None


class SourceFhirAuth(_Strict):
    """Who may POST FHIR for a source: a bearer token (from the environment) or a client
    certificate common name (with `fhir_http.tls` requiring client certificates)."""

    tokens: list[str] = Field(default_factory=list)
    client_names: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _someone(self) -> SourceFhirAuth:
        if not self.tokens and not self.client_names:
            raise ValueError("give tokens or client_names: an open FHIR endpoint is refused")
        return self


class SourceConfig(_Strict):
    name: Name
    description: str | None = None
    care_setting: CareSetting = CareSetting.UNKNOWN
    timezone: str = "Europe/London"
    mllp: MllpListenerConfig | None = None
    fhir: SourceFhirAuth | None = None
    """Accept FHIR over HTTP for this source (needs the top-level `fhir_http`)."""
    profile: dict[str, Any] = Field(default_factory=dict)
    """How this feed differs from NHS ITK conventions (see docs/configuration.md): which PV1-3
    component holds the ward, local code tables, where legal status and risk flags are."""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        try:
            zoneinfo.ZoneInfo(zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {zone!r}") from None
        return zone


class WebhookDestination(_Strict):
    """POSTs the canonical care event as JSON, with an Idempotency-Key header."""

    type: Literal["webhook"]
    name: Name
    url: Annotated[str, Field(pattern=r"^https?://[^\s]+$")]
    secret: str | None = Field(default=None, min_length=1)
    """HMAC-SHA256 key for the X-Carebridge-Signature header; only as ${ENV_NAME}."""
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: Duration = timedelta(seconds=10)
    retry: Name = "default"
    hold_on_dead_letter: bool = False
    """If true, a dead-lettered event holds back that patient's later events until resolved."""


class AmqpDestination(_Strict):
    """Publishes canonical care events to a RabbitMQ topic exchange for any subscriber.

    The routing key is ``<kind>.<care_setting>.<source>``, e.g.
    ``discharge.mental_health.mh-trust``.
    Publishing waits for the broker's confirm; with `mandatory` true an event no queue is bound
    for counts as a failed delivery, otherwise it is the subscribers' business to be bound.
    """

    type: Literal["amqp"]
    name: Name
    exchange: str = "carebridge.events"
    mandatory: bool = False
    retry: Name = "default"
    hold_on_dead_letter: bool = False


class OAuth2ClientCredentials(_Strict):
    token_url: Annotated[str, Field(pattern=r"^https?://[^\s]+$")]
    client_id: str
    client_secret: str
    """Only as ${ENV_NAME}."""
    scope: str | None = None


class FhirDestination(_Strict):
    """Sends each care event to a FHIR R4 server, so that a retry never creates a duplicate:
    `$process-message` with the stable Bundle identifier, or a transaction of
    identifier-conditional creates and updates."""

    type: Literal["fhir"]
    name: Name
    base_url: Annotated[str, Field(pattern=r"^https?://[^\s]+$")]
    mode: Literal["process-message", "transaction"] = "process-message"
    bearer_token: str | None = Field(default=None, min_length=1)
    """Only as ${ENV_NAME}."""
    oauth2: OAuth2ClientCredentials | None = None
    timeout: Duration = timedelta(seconds=30)
    retry: Name = "default"
    hold_on_dead_letter: bool = False

    @model_validator(mode="after")
    def _one_way_to_authenticate(self) -> FhirDestination:
        if self.bearer_token is not None and self.oauth2 is not None:
            raise ValueError("give bearer_token or oauth2, not both")
        return self


class NotificationRecipient(_Strict):
    """A team or practice that receives discharge notifications, and whose patients it gets.

    A recipient matches an event when every criterion it sets matches (GP practice ODS code of
    the patient, provider ODS code of the stay, source); one that sets none matches everyone
    (a fallback). The first matching recipient of the destination receives the notification.
    """

    name: Name
    url: Annotated[str, Field(pattern=r"^https?://[^\s]+$")]
    secret: str | None = Field(default=None, min_length=1)
    """HMAC key for X-Carebridge-Signature; only as ${ENV_NAME}."""
    gp_practices: list[str] = Field(default_factory=list)
    providers: list[str] = Field(default_factory=list)
    sources: list[Name] = Field(default_factory=list)


class NotificationDestination(_Strict):
    """Clinician notifications for discharges (and transfers out of inpatient care): a short
    message a person can act on, the structured JSON, and a FHIR Communication plus a Task for
    the follow-up, posted to the matching recipient with a signed acknowledgement link."""

    type: Literal["notification"]
    name: Name
    recipients: list[NotificationRecipient] = Field(min_length=1)
    ack_base_url: Annotated[str, Field(pattern=r"^https?://[^\s]+$")]
    """The engine's HTTP port as recipients reach it: links go to <ack_base_url>/notifications."""
    ack_secret: str = Field(min_length=32)
    """Signs acknowledgement links; only as ${ENV_NAME}, at least 32 characters."""
    timeout: Duration = timedelta(seconds=10)
    retry: Name = "default"
    hold_on_dead_letter: bool = True


class AlertWebhook(_Strict):
    url: Annotated[str, Field(pattern=r"^https?://[^\s]+$")]
    secret: str | None = None


class FollowUpConfig(_Strict):
    """Follow-up after discharge: which discharges start a clock (rules, first match wins; the
    NHS defaults when omitted), and when to raise an alert."""

    rules: list[dict[str, Any]] | None = None
    check_interval: Duration = timedelta(seconds=60)
    unacknowledged_after: Duration = timedelta(hours=4)
    alert_webhook: AlertWebhook | None = None
    list_token: str | None = Field(default=None, min_length=32)
    """Bearer token for `GET /follow-ups` (only as ${ENV_NAME}); without it the list is off."""


AckHandling = Literal["delivered", "transient", "permanent"]


class MllpAckPolicy(_Strict):
    """What each answer of an MLLP destination means for the delivery."""

    AE: AckHandling = "permanent"
    AR: AckHandling = "transient"
    silence: AckHandling = "transient"
    """No answer within the timeout, or a connection that failed."""


class MllpDestination(_Strict):
    """Sends each care event as an HL7v2 ADT message (ITK conventions) over MLLP."""

    type: Literal["mllp"]
    name: Name
    host: str
    port: int = Field(ge=1, le=65535)
    version: Literal["2.4", "2.5", "2.5.1"] = "2.4"
    sending_application: str = "CAREBRIDGE"
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    timeout: Duration = timedelta(seconds=30)
    tls: TlsConfig | None = None
    ack: MllpAckPolicy = MllpAckPolicy()
    retry: Name = "default"
    hold_on_dead_letter: bool = False


Destination = Annotated[
    WebhookDestination
    | AmqpDestination
    | MllpDestination
    | FhirDestination
    | NotificationDestination,
    Field(discriminator="type"),
]


class RouteMatch(_Strict):
    """Every given criterion must match; an omitted one matches anything."""

    kinds: list[EventKind] | None = None
    care_settings: list[CareSetting] | None = None
    sources: list[Name] | None = None


class Route(_Strict):
    name: Name
    match: RouteMatch = RouteMatch()
    to: list[Name] = Field(min_length=1)


class Config(_Strict):
    amqp: AmqpConfig = AmqpConfig()
    store: StoreConfig = StoreConfig()
    http: HttpConfig = HttpConfig()
    fhir_http: FhirListenerConfig | None = None
    console: ConsoleConfig | None = None
    alerts: AlertsConfig | None = None
    follow_up: FollowUpConfig = FollowUpConfig()
    intake: IntakeConfig = IntakeConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    logging: LoggingConfig = LoggingConfig()
    shutdown: ShutdownConfig = ShutdownConfig()
    retention: RetentionConfig = RetentionConfig()
    retry_policies: dict[Name, RetryPolicy] = Field(
        default_factory=lambda: {"default": RetryPolicy()}
    )
    sources: list[SourceConfig] = Field(min_length=1)
    destinations: list[Destination] = Field(default_factory=list)
    routes: list[Route] = Field(default_factory=list)

    def source(self, name: str) -> SourceConfig | None:
        return next((s for s in self.sources if s.name == name), None)

    def destination(self, name: str) -> Destination | None:
        return next((d for d in self.destinations if d.name == name), None)


_PROFILE_OWN_KEYS = ("feed", "care_setting", "timezone")


def feed_profile(source: SourceConfig) -> FeedProfile:
    """The mapping profile of one source; raises ProfileError (problems without a prefix)."""
    problems = [f"{k}: set on the source itself, not in its profile"
                for k in _PROFILE_OWN_KEYS if k in source.profile]  # fmt: skip
    own = {k: v for k, v in source.profile.items() if k not in _PROFILE_OWN_KEYS}
    try:
        profile = FeedProfile.from_mapping({
            "feed": source.name,
            "care_setting": source.care_setting.value,
            "timezone": source.timezone,
            **own,
        })  # fmt: skip
    except ProfileError as exc:
        problems += exc.problems
    if problems:
        raise ProfileError(problems)
    return profile


def follow_up_rules(config: Config) -> tuple[FollowUpRule, ...]:
    """The follow-up rules in force: the config's, or the NHS defaults."""
    if config.follow_up.rules is None:
        return DEFAULT_RULES
    return rules_from_mapping(config.follow_up.rules)


def feed_profiles(config: Config) -> dict[str, FeedProfile]:
    return {source.name: feed_profile(source) for source in config.sources}


def _cross_check(raw: Config) -> list[str]:
    problems: list[str] = []
    for name in raw.alerts.silent_sources if raw.alerts else {}:
        if raw.source(name) is None:
            problems.append(f"alerts.silent_sources.{name}: no source named {name!r}")
    try:
        follow_up_rules(raw)
    except RuleError as exc:
        problems += [f"follow_up.rules{p}" for p in exc.problems]
    listening: dict[tuple[str, int], int] = {}
    for i, source in enumerate(raw.sources):
        if source.fhir is not None and raw.fhir_http is None:
            problems.append(f"sources[{i}].fhir: needs the top-level fhir_http listener")
        if source.mllp is not None and source.mllp.port != 0:
            where = (source.mllp.host, source.mllp.port)
            if where in listening:
                problems.append(f"sources[{i}].mllp.port: {where[1]} is already the MLLP port "
                                f"of sources[{listening[where]}]")  # fmt: skip
            listening[where] = i
        try:
            feed_profile(source)
        except ProfileError as exc:
            problems += [f"sources[{i}].profile.{p}" for p in exc.problems]
    for kind, items in (
        ("sources", raw.sources),
        ("destinations", raw.destinations),
        ("routes", raw.routes),
    ):
        seen: set[str] = set()
        for i, item in enumerate(items):
            if item.name in seen:
                problems.append(f"{kind}[{i}].name: duplicate name {item.name!r}")
            seen.add(item.name)
    sources = {s.name for s in raw.sources}
    destinations = {d.name for d in raw.destinations}
    for i, dest in enumerate(raw.destinations):
        if dest.retry not in raw.retry_policies:
            problems.append(f"destinations[{i}].retry: no retry policy named {dest.retry!r}")
    for i, route in enumerate(raw.routes):
        for j, name in enumerate(route.to):
            if name not in destinations:
                problems.append(f"routes[{i}].to[{j}]: no destination named {name!r}")
        for j, name in enumerate(route.match.sources or []):
            if name not in sources:
                problems.append(f"routes[{i}].match.sources[{j}]: no source named {name!r}")
    return problems


def _substitute(node: Any, path: str, env: Mapping[str, str], problems: list[str]) -> Any:
    """Replace ${NAME} from the environment, recording a problem for each one that is unset."""
    if isinstance(node, dict):
        return {
            k: _substitute(v, f"{path}.{k}" if path else str(k), env, problems)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_substitute(v, f"{path}[{i}]", env, problems) for i, v in enumerate(node)]
    if isinstance(node, str):

        def replace(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            problems.append(f"{path}: environment variable {name} is not set")
            return ""

        return _ENV_REF.sub(replace, node)
    return node


def _is_env_reference(value: object, *, whole: bool) -> bool:
    """A reference to the environment with no default (a default would put the secret here)."""
    if not isinstance(value, str):
        return False
    refs = [_ENV_REF.fullmatch(value)] if whole else list(_ENV_REF.finditer(value))
    return bool(refs) and all(m is not None and m.group(2) is None for m in refs)


def _secrets_by_reference(node: Any, problems: list[str]) -> None:
    """Secret fields must name an environment variable, never hold the secret itself."""
    alerts = node.get("alerts")
    hook = alerts.get("webhook") if isinstance(alerts, dict) else None
    if (
        isinstance(hook, dict)
        and hook.get("secret") is not None
        and not _is_env_reference(hook["secret"], whole=True)
    ):
        problems.append("alerts.webhook.secret: must be an environment reference")
    follow_up = node.get("follow_up")
    listed = follow_up.get("list_token") if isinstance(follow_up, dict) else None
    if listed is not None and not _is_env_reference(listed, whole=True):
        problems.append("follow_up.list_token: must be an environment reference")
    alert = follow_up.get("alert_webhook") if isinstance(follow_up, dict) else None
    if (
        isinstance(alert, dict)
        and alert.get("secret") is not None
        and not _is_env_reference(alert["secret"], whole=True)
    ):
        problems.append("follow_up.alert_webhook.secret: must be an environment reference")
    console = node.get("console")
    if isinstance(console, dict):
        if "session_secret" in console and not _is_env_reference(
            console["session_secret"], whole=True
        ):
            problems.append("console.session_secret: must be an environment reference like "
                            "${CONSOLE_SESSION_SECRET}")  # fmt: skip
        for j, token in enumerate(console.get("tokens") or []):
            value = token.get("token") if isinstance(token, dict) else None
            if value is not None and not _is_env_reference(value, whole=True):
                problems.append(f"console.tokens[{j}].token: must be an environment reference")
    for i, source in enumerate(node.get("sources") or []):
        fhir = source.get("fhir") if isinstance(source, dict) else None
        for j, token in enumerate(
            (fhir or {}).get("tokens") or [] if isinstance(fhir, dict) else []
        ):
            if not _is_env_reference(token, whole=True):
                problems.append(f"sources[{i}].fhir.tokens[{j}]: must be an environment "
                                "reference like ${MH_FHIR_TOKEN}")  # fmt: skip
    for i, dest in enumerate(node.get("destinations") or []):
        if not isinstance(dest, dict):
            continue
        secret = dest.get("secret")
        if secret is not None and not _is_env_reference(secret, whole=True):
            problems.append(
                f"destinations[{i}].secret: must be an environment reference like "
                "${WEBHOOK_SECRET}, not the secret itself"
            )
        for key in ("bearer_token",):
            value = dest.get(key)
            if value is not None and not _is_env_reference(value, whole=True):
                problems.append(f"destinations[{i}].{key}: must be an environment reference "
                                "like ${FHIR_TOKEN}, not the secret itself")  # fmt: skip
        if dest.get("type") == "notification" and not _is_env_reference(
            dest.get("ack_secret"), whole=True
        ):
            problems.append(f"destinations[{i}].ack_secret: must be an environment reference "
                            "like ${NOTIFY_ACK_SECRET}")  # fmt: skip
        for j, recipient in enumerate(dest.get("recipients") or []):
            secret = recipient.get("secret") if isinstance(recipient, dict) else None
            if secret is not None and not _is_env_reference(secret, whole=True):
                problems.append(f"destinations[{i}].recipients[{j}].secret: must be an "
                                "environment reference")  # fmt: skip
        oauth = dest.get("oauth2")
        if isinstance(oauth, dict) and not _is_env_reference(
            oauth.get("client_secret"), whole=True
        ):
            problems.append(f"destinations[{i}].oauth2.client_secret: must be an environment "
                            "reference like ${OAUTH_SECRET}")  # fmt: skip
        for header, value in (dest.get("headers") or {}).items():
            if header.lower() == "authorization" and not _is_env_reference(value, whole=False):
                problems.append(
                    f"destinations[{i}].headers.{header}: credentials must come "
                    "from the environment (${NAME})"
                )


_DESTINATION_TAGS = frozenset({"webhook", "amqp", "mllp", "fhir", "notification"})


def _pydantic_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            path += f"[{part}]"
        elif i == 2 and loc[0] == "destinations" and part in _DESTINATION_TAGS:
            continue  # the discriminator tag pydantic inserts after destinations[i]
        else:
            path += f".{part}" if path else str(part)
    return path or "(top level)"


def parse_config(
    text: str, *, origin: str = "config", env: Mapping[str, str] | None = None
) -> Config:
    """Parse and validate config text; raise ConfigError listing every problem."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else origin
        raise ConfigError([f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})"]) from None
    if not isinstance(raw, dict):
        raise ConfigError(["(top level): must be a mapping of settings"])
    problems: list[str] = []
    _secrets_by_reference(raw, problems)
    raw = _substitute(raw, "", os.environ if env is None else env, problems)
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        unset = {p.split(": ", 1)[0] for p in problems if p.endswith(" is not set")}
        problems += [f"{path}: {e['msg']}" for e in exc.errors()
                     if (path := _pydantic_path(e["loc"])) not in unset]  # fmt: skip
        raise ConfigError(problems) from None
    problems += _cross_check(config)
    if problems:
        raise ConfigError(problems)
    return config


def load_config(path: Path | None, env: Mapping[str, str] | None = None) -> Config:
    """Load the config file at `path`, or the embedded defaults when `path` is None."""
    if path is None:
        text = resources.files("engine").joinpath("defaults.yaml").read_text("utf-8")
        return parse_config(text, origin="embedded defaults", env=env)
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror})"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not UTF-8 text"]) from None
    return parse_config(text, origin=str(path), env=env)
