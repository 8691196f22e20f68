"""What every destination that carries patient data over HTTP shares: its URLs are https://,
unless the destination says plain http:// is meant (``allow_plain_http: true``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Self

from pydantic import model_validator

from engine.config.base import Strict
from mappings.settings import problems_at

PLAIN_HTTP = (
    "plain http:// is unencrypted, and this destination carries patient data (or the "
    "credentials to send it): use https://, or set allow_plain_http: true on this destination "
    "(for a receiver on loopback, or behind a TLS-terminating proxy on the same host)"
)

Url = tuple[tuple[str | int, ...], str]
"""Where a URL sits in a destination, and the URL."""


class HttpDestination(Strict):
    """What a destination that carries patient data over HTTP shares: every URL it sends to (or
    hands a clinician) is https://, unless `allow_plain_http` says plain http:// is meant."""

    allow_plain_http: bool = False
    """Allow http:// URLs on this destination: only for a receiver on loopback or behind a
    TLS-terminating proxy on the same host, never across a network."""

    def urls(self) -> Iterator[Url]:
        raise NotImplementedError

    @model_validator(mode="after")
    def _https_unless_allowed(self) -> Self:
        if self.allow_plain_http:
            return self
        plain = [(where, PLAIN_HTTP) for where, url in self.urls() if url.startswith("http://")]
        if plain:
            raise problems_at(type(self).__name__, plain)
        return self
