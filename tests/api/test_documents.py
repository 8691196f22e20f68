"""The OpenAPI documents are valid OpenAPI 3.1 and true to the router tables: every route of a
listener is documented (a route added without documentation fails here), and every documented
operation has a route. The FHIR listener answers its own refusals (no such path, a method other
than POST) with an OperationOutcome, as its document says."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from aiohttp import web
from schemathesis.core.result import Ok

from adapters.fhir_http import FhirListener
from engine import health
from engine.config import StoreConfig
from engine.config.load import load_config
from engine.openapi import document_route, documented_operations, fhir_document, http_document
from engine.store import Store
from tests.http.fhir import AUTHORISED, fhir_listener
from tests.http.wire import ask, head


def routed(app: web.Application) -> set[tuple[str, str]]:
    """(METHOD, path) of every route; HEAD is aiohttp's own twin of each GET."""
    found = set()
    for route in app.router.routes():
        if route.method != "HEAD" and route.resource is not None:
            found.add((route.method, route.resource.canonical))
    return found


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(StoreConfig(url=f"sqlite+aiosqlite:///{tmp_path / 'cb.db'}"))
    yield opened
    await opened.close()


async def _never_ready() -> dict[str, bool]:
    return {}


async def test_every_route_of_the_http_listener_is_documented_and_no_more(store: Store) -> None:
    app = health.health_app(_never_ready, health.http_routes(store, load_config(None, {})))
    assert routed(app) == documented_operations(http_document())


def test_every_route_of_the_fhir_listener_is_documented_and_no_more() -> None:
    async def never(_request: Any) -> Any:
        raise AssertionError

    listener = FhirListener("127.0.0.1", 0, admit=lambda _s: None, handle=never,
                            max_body_bytes=1, extra=[document_route(fhir_document())])  # fmt: skip
    assert routed(listener.app()) == documented_operations(fhir_document())


@pytest.mark.parametrize("document", [fhir_document(), http_document()], ids=["fhir", "http"])
def test_each_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    schema = schemathesis.openapi.from_dict(document)
    schema.validate()  # against the OpenAPI 3.1 meta-schema
    operations = set()
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # each operation's schemas resolve
        operations.add((result.ok().method.upper(), result.ok().path))
    assert operations == documented_operations(document)


def test_a_document_that_breaks_the_meta_schema_is_caught() -> None:
    """The validation above can fail: a response without its required description."""
    broken = json.loads(json.dumps(http_document()))
    del broken["paths"]["/healthz"]["get"]["responses"]["200"]["description"]
    with pytest.raises(Exception, match="description"):
        schemathesis.openapi.from_dict(broken).validate()


@pytest.mark.parametrize(
    ("request_head", "status", "code"),
    [
        (head("GET", "/fhir/mh", AUTHORISED), 405, "not-supported"),
        (head("POST", "/fhir/mh/extra", {**AUTHORISED, "Content-Length": "2"}) + b"{}", 404,
         "not-found"),
        (head("POST", "/nowhere", {**AUTHORISED, "Content-Length": "2"}) + b"{}", 404,
         "not-found"),
    ],
    ids=["wrong-method", "path-under-fhir", "no-such-path"],
)  # fmt: skip
async def test_the_fhir_listeners_own_refusals_are_operation_outcomes(
    request_head: bytes, status: int, code: str
) -> None:
    """Regression: these were aiohttp's text/plain pages, not the documented OperationOutcome."""
    async with fhir_listener() as fhir:
        answer = await ask(fhir.port, request_head)
    assert answer.status == status
    assert answer.headers["content-type"].startswith("application/fhir+json")
    outcome = json.loads(answer.body)
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == code
    if status == 405:
        assert answer.headers["allow"] == "POST"
    assert fhir.published.bodies == []
