"""``sources:``, ``fhir_http:``: the feeds the engine takes messages from, and its listeners."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import Field, PlainValidator, PrivateAttr, model_validator

from engine.config.base import Duration, FromEnvironment, Name, ServerTlsConfig, Strict
from engine.config.listeners import ListenerLimits
from mappings.model import CareSetting
from mappings.profile import DEFAULT_TIMEZONE, FeedProfile, ProfileSettings, TimeZone


def _on_the_source(_value: object) -> None:
    raise ValueError("set on the source itself, not in its profile")


_OnTheSource = Annotated[None, PlainValidator(_on_the_source)]


class SourceProfile(ProfileSettings):
    """A source's ``profile:``; the feed's name, care setting and time zone are the source's own
    settings, and refused here."""

    feed: _OnTheSource = None
    care_setting: _OnTheSource = None
    timezone: _OnTheSource = None


class MllpListenerConfig(Strict):
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


class FhirListenerConfig(Strict):
    """The FHIR HTTP endpoint: `POST /fhir/{source}` for every source that has `fhir` set."""

    host: str = "127.0.0.1"
    port: int = Field(ge=0, le=65535)
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    tls: ServerTlsConfig | None = None
    limits: ListenerLimits = ListenerLimits()
    behind_tls_proxy: bool = False
    """A TLS-terminating proxy is in front: answers carry Strict-Transport-Security."""


class SourceFhirAuth(Strict):
    """Who may POST FHIR for a source: a bearer token (from the environment) or a client
    certificate common name (with `fhir_http.tls` requiring client certificates)."""

    tokens: list[Annotated[str, FromEnvironment("MH_FHIR_TOKEN")]] = Field(default_factory=list)
    client_names: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _someone(self) -> SourceFhirAuth:
        if not self.tokens and not self.client_names:
            raise ValueError("give tokens or client_names: an open FHIR endpoint is refused")
        return self


class SourceConfig(Strict):
    name: Name
    description: str | None = None
    care_setting: CareSetting = CareSetting.UNKNOWN
    timezone: TimeZone = DEFAULT_TIMEZONE
    mllp: MllpListenerConfig | None = None
    fhir: SourceFhirAuth | None = None
    """Accept FHIR over HTTP for this source (needs the top-level `fhir_http`)."""
    profile: SourceProfile = SourceProfile()
    """How this feed differs from NHS ITK conventions (see docs/configuration.md): which PV1-3
    component holds the ward, local code tables, where legal status and risk flags are."""
    _feed_profile: FeedProfile = PrivateAttr()

    @model_validator(mode="after")
    def _build_feed_profile(self) -> SourceConfig:
        """The source's runtime FeedProfile, built once, when the config is loaded."""
        self._feed_profile = self.profile.build(self.name, self.care_setting, self.timezone)
        return self

    @property
    def feed_profile(self) -> FeedProfile:
        """How the mapping reads this source's messages (built when the config was loaded)."""
        return self._feed_profile
