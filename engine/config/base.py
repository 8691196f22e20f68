"""What every part of the config shares: the one strict base model, the secret marks, names,
URLs, durations, TLS settings and the error that carries ``path: reason`` problems.

Durations are seconds (``30``) or a number with a unit (``250ms``, ``5s``, ``15m``, ``72h``,
``2d``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


class ConfigError(Exception):
    """The config is invalid; `problems` holds one ``path: reason`` line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def parse_duration(value: object) -> object:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m or 72h")
    if isinstance(value, int | float):
        return timedelta(seconds=float(value))
    if isinstance(value, str) and (m := _DURATION.match(value)):
        return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    raise ValueError("expected a duration such as 30s, 5m or 72h")


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


@dataclass(frozen=True, slots=True)
class FromEnvironment:
    """Marks a secret setting: in the file it must be a ``${NAME}`` reference without a default,
    never the secret itself (`engine.config.environment` walks the models for this mark).
    `example` is the variable a problem suggests."""

    example: str | None = None


@dataclass(frozen=True, slots=True)
class CredentialHeaders:
    """Marks a mapping of HTTP headers: an ``Authorization`` value must take its credentials
    from the environment (``Bearer ${TOKEN}``)."""


Secret = Annotated[str, FromEnvironment()]
"""A secret text setting; fields that suggest a variable name use `FromEnvironment(name)`."""
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
HttpUrl = Annotated[str, Field(pattern=r"^https?://[^\s]+$")]


class Strict(BaseModel):
    """The base of every config model: unknown keys are errors, and settings never change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


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


_STEP = re.compile(r"\[(\d+)\]|([^.\[\]]+)")


def problems_error(title: str, under: tuple[str, ...], problems: list[str]) -> ValidationError:
    """The ``path: reason`` problems of a reader outside pydantic (a feed profile, follow-up
    rules) as one ValidationError at their exact paths below `under`, worded as they are."""
    details: list[InitErrorDetails] = []
    for problem in problems:
        path, _, reason = problem.partition(": ")
        steps = [int(index) if index else key for index, key in _STEP.findall(path)]
        error = PydanticCustomError("config", "{reason}", {"reason": reason})
        details.append(InitErrorDetails(type=error, loc=(*under, *steps), input=None))
    return ValidationError.from_exception_data(title, details)
