"""``sources:``, ``fhir_http:``: the feeds the engine takes messages from, and its listeners."""

from __future__ import annotations

import zoneinfo
from datetime import timedelta
from typing import Annotated, Any

from pydantic import Field, PrivateAttr, field_validator, model_validator

from engine.config.base import (
    Duration,
    FromEnvironment,
    Name,
    ServerTlsConfig,
    Strict,
    problems_error,
)
from mappings.model import CareSetting
from mappings.profile import FeedProfile, ProfileError

_PROFILE_OWN_KEYS = ("feed", "care_setting", "timezone")


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
    timezone: str = "Europe/London"
    mllp: MllpListenerConfig | None = None
    fhir: SourceFhirAuth | None = None
    """Accept FHIR over HTTP for this source (needs the top-level `fhir_http`)."""
    profile: dict[str, Any] = Field(default_factory=dict)
    """How this feed differs from NHS ITK conventions (see docs/configuration.md): which PV1-3
    component holds the ward, local code tables, where legal status and risk flags are."""
    _feed_profile: FeedProfile = PrivateAttr()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        try:
            zoneinfo.ZoneInfo(zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {zone!r}") from None
        return zone

    @model_validator(mode="after")
    def _build_feed_profile(self) -> SourceConfig:
        """Validate `profile` (with the mapping's own reader, problems at their exact paths)
        and build the source's FeedProfile, once, when the config is loaded."""
        problems = [f"{k}: set on the source itself, not in its profile"
                    for k in _PROFILE_OWN_KEYS if k in self.profile]  # fmt: skip
        own = {k: v for k, v in self.profile.items() if k not in _PROFILE_OWN_KEYS}
        try:
            self._feed_profile = FeedProfile.from_mapping({
                "feed": self.name,
                "care_setting": self.care_setting.value,
                "timezone": self.timezone,
                **own,
            })  # fmt: skip
        except ProfileError as exc:
            problems += exc.problems
        if problems:
            raise problems_error("profile", ("profile",), problems)
        return self

    @property
    def feed_profile(self) -> FeedProfile:
        """How the mapping reads this source's messages (built when the config was loaded)."""
        return self._feed_profile
