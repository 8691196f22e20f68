"""``destinations:``: where care events go, one model per destination type."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field, model_validator

from engine.config.base import (
    CredentialHeaders,
    Duration,
    FromEnvironment,
    HttpUrl,
    Name,
    Secret,
    Strict,
    TlsConfig,
)
from engine.config.http import HttpDestination, Url
from engine.config.mesh import MeshDestination


class WebhookDestination(HttpDestination):
    """POSTs the canonical care event as JSON, with an Idempotency-Key header."""

    type: Literal["webhook"]
    name: Name
    url: HttpUrl
    secret: Annotated[str, FromEnvironment("WEBHOOK_SECRET")] | None = None
    """HMAC-SHA256 key for the X-Carebridge-Signature header; only as ${ENV_NAME}."""
    headers: Annotated[dict[str, str], CredentialHeaders()] = Field(default_factory=dict)
    timeout: Duration = timedelta(seconds=10)
    retry: Name = "default"
    hold_on_dead_letter: bool = False
    """If true, a dead-lettered event holds back that patient's later events until resolved."""

    def urls(self) -> Iterator[Url]:
        yield ("url",), self.url


class AmqpDestination(Strict):
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


class OAuth2ClientCredentials(Strict):
    token_url: HttpUrl
    client_id: str
    client_secret: Annotated[str, FromEnvironment("OAUTH_SECRET")]
    """Only as ${ENV_NAME}."""
    scope: str | None = None


class FhirDestination(HttpDestination):
    """Sends each care event to a FHIR R4 server, so that a retry never creates a duplicate:
    `$process-message` with the stable Bundle identifier, or a transaction of
    identifier-conditional creates and updates."""

    type: Literal["fhir"]
    name: Name
    base_url: HttpUrl
    mode: Literal["process-message", "transaction"] = "process-message"
    bearer_token: Annotated[str, FromEnvironment("FHIR_TOKEN")] | None = None
    """Only as ${ENV_NAME}."""
    oauth2: OAuth2ClientCredentials | None = None
    timeout: Duration = timedelta(seconds=30)
    retry: Name = "default"
    hold_on_dead_letter: bool = False

    def urls(self) -> Iterator[Url]:
        yield ("base_url",), self.base_url
        if self.oauth2 is not None:
            yield ("oauth2", "token_url"), self.oauth2.token_url

    @model_validator(mode="after")
    def _one_way_to_authenticate(self) -> FhirDestination:
        if self.bearer_token is not None and self.oauth2 is not None:
            raise ValueError("give bearer_token or oauth2, not both")
        return self


class NotificationRecipient(Strict):
    """A team or practice that receives discharge notifications, and whose patients it gets:
    one rule of the destination (`engine.delivery.recipients`).

    A recipient matches an event when every criterion it sets matches: the patient's GP
    practice, their area (home postcode district, or their practice's ICB by
    ``transitions.practice_icbs``), their age at discharge, the stay's treatment function, care
    setting and provider, the source. One that sets none matches everyone (the default). The
    first match chooses, except that an out-of-area patient goes to the first match on where
    they live (their home team) when there is one.
    """

    name: Name
    url: HttpUrl
    secret: Secret | None = None
    """HMAC key for X-Carebridge-Signature; only as ${ENV_NAME}."""
    gp_practices: list[str] = Field(default_factory=list)
    postcode_districts: list[Annotated[str, Field(pattern=r"^[A-Z]{1,2}[0-9][A-Z0-9]?$")]] = Field(
        default_factory=list
    )
    """Home postcode districts (outward codes: LS1, SW1A) this recipient serves."""
    icbs: list[str] = Field(default_factory=list)
    """ICB codes: the patient's GP practice's ICB (``transitions.practice_icbs``) is one."""
    min_age: int | None = Field(default=None, ge=0, le=130)
    max_age: int | None = Field(default=None, ge=0, le=130)
    """Age band at discharge, inclusive; an unknown age matches no band."""
    treatment_functions: list[str] = Field(default_factory=list)
    care_settings: list[Literal["mental_health", "acute", "community", "unknown"]] = Field(
        default_factory=list
    )
    providers: list[str] = Field(default_factory=list)
    sources: list[Name] = Field(default_factory=list)
    adult_services: bool = False
    """An adult team: a CAMHS spell discharged to it is flagged as a move to adult services."""

    @model_validator(mode="after")
    def _a_band_is_a_band(self) -> NotificationRecipient:
        if self.min_age is not None and self.max_age is not None and self.min_age > self.max_age:
            raise ValueError("min_age is over max_age: no one is in that band")
        return self


class NotificationDestination(HttpDestination):
    """Clinician notifications for discharges (and transfers out of inpatient care): a short
    message a person can act on, the structured JSON, and a FHIR Communication plus a Task for
    the follow-up, posted to the matching recipient with a signed acknowledgement link."""

    type: Literal["notification"]
    name: Name
    recipients: list[NotificationRecipient] = Field(min_length=1)
    ack_base_url: HttpUrl
    """The engine's HTTP port as recipients reach it: links go to <ack_base_url>/notifications."""
    link_lifetime: Duration = Field(default=timedelta(days=14), gt=timedelta(0))
    """How long the links of a notification work (each once): an old link cannot close a
    follow-up long overdue."""
    ack_secret: Annotated[str, FromEnvironment("NOTIFY_ACK_SECRET")] | None = None
    """No longer used (links carry random tokens, stored hashed); accepted so that older
    configs still load."""
    timeout: Duration = timedelta(seconds=10)
    retry: Name = "default"
    hold_on_dead_letter: bool = True

    def urls(self) -> Iterator[Url]:
        """The recipients' URLs, and the acknowledgement pages' (which show the patient)."""
        for index, recipient in enumerate(self.recipients):
            yield ("recipients", index, "url"), recipient.url
        yield ("ack_base_url",), self.ack_base_url


AckHandling = Literal["delivered", "transient", "permanent"]


class MllpAckPolicy(Strict):
    """What each answer of an MLLP destination means for the delivery."""

    AE: AckHandling = "permanent"
    AR: AckHandling = "transient"
    silence: AckHandling = "transient"
    """No answer within the timeout, or a connection that failed."""


class MllpDestination(Strict):
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
    | NotificationDestination
    | MeshDestination,
    Field(discriminator="type"),
]
DESTINATION_TYPES = frozenset({"webhook", "amqp", "mllp", "fhir", "notification", "mesh"})
