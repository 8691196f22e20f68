"""Property-based tests of every documented HTTP API against a real running engine
(schemathesis 4 over the documents the engine serves at ``/openapi.json``): whatever the
generated request, no 5xx, a documented status, media type and body shape.

Requests reach deeper than a refusal: part of them name the configured source, carry the right
bearer token, or send a FHIR message the engine accepts (tests/fixtures/fhir).
Seeded (derandomize) and kept small so the file runs in about a minute on two cores.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from engine.openapi import fhir_document, http_document
from tests.api.engine import DESTINATION, FHIR_TOKEN, LIST_TOKEN, Running, running_engine

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance]  # fmt: skip
FIXTURES = ("mh_discharge_message.json", "acute_transfer_transaction.json",
            "community_leave_encounter.json")  # fmt: skip
FHIR_BODIES = [json.loads((REPO / "tests/fixtures/fhir" / name).read_bytes()) for name in FIXTURES]
LINK_TOKENS = st.from_regex(r"[A-Za-z0-9_-]{43}", fullmatch=True)
EXAMPLES = settings(max_examples=40, derandomize=True, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))  # fmt: skip


SOURCE = f"api-{uuid.uuid4().hex[:8]}"
fhir_schema = schemathesis.openapi.from_dict(fhir_document())
http_schema = schemathesis.openapi.from_dict(http_document())
"""The documents as the engine holds them; test_documents.py checks the engine serves them."""


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with running_engine(tmp_path_factory.mktemp("api-engine"), SOURCE) as running:
        yield running


def _sometimes(given: Any, known: Any) -> st.SearchStrategy[Any]:
    return st.sampled_from([given, known])


@fhir_schema.hook
def flatmap_path_parameters(_context: Any, parameters: dict[str, Any] | None) -> Any:
    if parameters is None:
        return st.just(parameters)
    if "source" in parameters:
        return _sometimes(parameters, {**parameters, "source": SOURCE})
    if "destination" in parameters:
        return _sometimes(parameters, {**parameters, "destination": DESTINATION})
    return st.just(parameters)


http_schema.hook(flatmap_path_parameters)


@fhir_schema.hook
def flatmap_headers(context: Any, headers: dict[str, Any] | None) -> Any:
    token = FHIR_TOKEN if context.operation.path.startswith("/fhir/") else LIST_TOKEN
    return _sometimes(headers, {**(headers or {}), "Authorization": f"Bearer {token}"})


http_schema.hook(flatmap_headers)


@fhir_schema.hook
def flatmap_body(_context: Any, body: Any) -> Any:
    return st.sampled_from([body, *FHIR_BODIES])


@http_schema.hook("flatmap_body")
def link_body(_context: Any, body: Any) -> Any:
    """Part of the link actions carry a token of the right form (unknown to the engine)."""
    if not isinstance(body, dict):
        return st.just(body)
    return st.one_of(st.just(body), LINK_TOKENS.map(lambda token: {**body, "token": token}))


@fhir_schema.parametrize()
@EXAMPLES
def test_the_fhir_intake_answers_as_documented(engine: Running, case: Case[Any]) -> None:
    case.call_and_validate(base_url=engine.fhir_url, checks=CHECKS)


@http_schema.parametrize()
@EXAMPLES
def test_the_engine_http_port_answers_as_documented(engine: Running, case: Case[Any]) -> None:
    case.call_and_validate(base_url=engine.http_url, checks=CHECKS)


def test_the_engine_serves_each_document_on_its_listener_without_credentials(
    engine: Running,
) -> None:
    """What the property tests above generate from is what the engine serves."""
    for url, document in ((engine.fhir_url, fhir_document()), (engine.http_url, http_document())):
        answer = requests.get(f"{url}/openapi.json", timeout=10)
        assert answer.status_code == 200
        assert answer.headers["Content-Type"].startswith("application/json")
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.json() == json.loads(json.dumps(document))
