"""What every part of the config shares: the one strict base model and durations (from
`mappings.settings`, which the feed profile and follow-up rule models build on too), the secret
marks, names, URLs, TLS settings and the error that carries ``path: reason`` problems.

Durations are seconds (``30``) or a number with a unit (``250ms``, ``5s``, ``15m``, ``72h``,
``2d``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, GetCoreSchemaHandler, SecretStr, model_validator
from pydantic_core import PydanticCustomError, core_schema

from mappings.settings import Duration, Strict, parse_duration

__all__ = [
    "NAME_PATTERN",
    "SECRET_MIN_LENGTH",
    "ConfigError",
    "CredentialHeaders",
    "Duration",
    "FromEnvironment",
    "HttpUrl",
    "Name",
    "Secret",
    "ServerTlsConfig",
    "Strict",
    "TlsConfig",
    "parse_duration",
]

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class ConfigError(Exception):
    """The config is invalid; `problems` holds one ``path: reason`` line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


SECRET_MIN_LENGTH = 32
"""The fewest characters a secret or token may have once resolved: 32 random characters are
beyond guessing; a short one (``changeme``, ``s3cret``) is not."""


@dataclass(frozen=True, slots=True)
class FromEnvironment:
    """Marks a secret setting: in the file it must be a ``${NAME}`` reference without a default,
    never the secret itself (`engine.config.environment` walks the models for this mark), and
    once resolved it must be at least `SECRET_MIN_LENGTH` characters long. `example` is the
    variable a problem suggests."""

    example: str | None = None
    min_length: int = SECRET_MIN_LENGTH
    """Lower only for a credential someone else issues (a MESH mailbox's password), whose
    length is not ours to choose."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self._long_enough, handler(source))

    def _long_enough(self, value: str | SecretStr) -> str | SecretStr:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if len(text) < self.min_length:
            reason = (
                "must be at least {least} characters (a shorter secret can be guessed)"
                if self.min_length > 1
                else "must not be empty"
            )
            raise PydanticCustomError("weak_secret", reason, {"least": self.min_length})
        return value


@dataclass(frozen=True, slots=True)
class CredentialHeaders:
    """Marks a mapping of HTTP headers: an ``Authorization`` value must take its credentials
    from the environment (``Bearer ${TOKEN}``)."""


Secret = Annotated[str, FromEnvironment()]
"""A secret text setting; fields that suggest a variable name use `FromEnvironment(name)`."""
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
HttpUrl = Annotated[str, Field(pattern=r"^https?://[^\s]+$")]


class TlsConfig(Strict):
    """TLS for a client connection (AMQP or PostgreSQL)."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    verify: bool = True
    server_hostname: str | None = None


class ServerTlsConfig(Strict):
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
