"""The `limits` block under each HTTP listener: parsed with units, refused when it cannot work,
and handed to the HTTP adapter in seconds."""

from __future__ import annotations

import pytest

from adapters.http_server import HttpLimits
from engine.config import ConfigError, parse_config
from engine.health import http_limits


def test_every_listener_has_the_same_defaults_handed_on_in_seconds() -> None:
    config = parse_config("sources: [{name: a}]\nfhir_http: {port: 0}\n", env={})
    assert config.fhir_http is not None
    assert http_limits(config.http.limits) == HttpLimits()
    assert http_limits(config.fhir_http.limits) == HttpLimits(
        header_timeout=10, body_timeout=60, idle_timeout=15, max_connections=256
    )
    assert not config.http.behind_tls_proxy


def test_limits_are_read_with_units_per_listener() -> None:
    config = parse_config(
        "sources: [{name: a}]\n"
        "http: {limits: {header_timeout: 2s, idle_timeout: 500ms}, behind_tls_proxy: true}\n"
        "fhir_http: {port: 0, limits: {body_timeout: 2m, max_connections: 32}}\n",
        env={},
    )
    assert config.fhir_http is not None
    assert http_limits(config.http.limits) == HttpLimits(header_timeout=2, idle_timeout=0.5)
    assert http_limits(config.fhir_http.limits) == HttpLimits(body_timeout=120, max_connections=32)
    assert config.http.behind_tls_proxy


@pytest.mark.parametrize(
    ("limits", "path"),
    [
        ("{header_timeout: 0}", "http.limits.header_timeout"),
        ("{idle_timeout: 0s}", "http.limits.idle_timeout"),
        ("{max_connections: 0}", "http.limits.max_connections"),
        ("{read_timeout: 5s}", "http.limits.read_timeout"),
    ],
)
def test_limits_that_cannot_work_are_refused_naming_their_path(limits: str, path: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(f"sources: [{{name: a}}]\nhttp: {{limits: {limits}}}\n", env={})
    assert any(problem.startswith(path) for problem in caught.value.problems), caught.value
