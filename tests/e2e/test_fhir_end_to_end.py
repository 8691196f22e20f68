"""FHIR through the engine: POST /fhir/{source} in, a FHIR server out (OAuth2, retries).

The receiving FHIR server here is a small aiohttp app that behaves like a real one where it
matters: it needs an OAuth2 bearer token, answers 503 with Retry-After once, and applies each
messaging Bundle identifier and each conditional-update identifier once.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from engine.config import StoreConfig
from engine.store import Store
from engine.store.console_search import SearchFilter, search
from engine.store.follow_ups import listed_follow_ups
from tests.adt_factory import adt, patients
from tests.e2e.harness import (
    EngineProcess,
    Receiver,
    delete_queues,
    engine_config,
    free_port,
    publish_all,
    wait_until,
)
from tests.http.fhir import bundle_of

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
FHIR_MESSAGE = (REPO / "tests/fixtures/fhir/mh_discharge_message.json").read_bytes()
TOKEN = "inbound-token-for-tests-" + "t" * 16
OAUTH_SECRET = "oauth-secret-for-tests-" + "o" * 16


@dataclass
class FhirServer:
    """Applies each Bundle identifier once; refuses without a current OAuth2 token."""

    url: str = ""
    tokens_issued: int = 0
    throttle_next: int = 1
    bundles: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: int = 0
    repeats: int = 0

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        assert form["grant_type"] == "client_credentials"
        assert form["client_secret"] == OAUTH_SECRET
        self.tokens_issued += 1
        return web.json_response({"access_token": f"at-{self.tokens_issued}", "expires_in": 3600})

    async def process_message(self, request: web.Request) -> web.Response:
        self.requests += 1
        if request.headers.get("Authorization") != f"Bearer at-{self.tokens_issued}":
            return web.json_response({"resourceType": "OperationOutcome"}, status=401)
        if self.throttle_next:
            self.throttle_next -= 1
            return web.json_response({"resourceType": "OperationOutcome"}, status=503,
                                     headers={"Retry-After": "1"})  # fmt: skip
        bundle = await request.json()
        key = bundle["identifier"]["value"]
        if key in self.bundles:
            self.repeats += 1
        self.bundles.setdefault(key, bundle)
        return web.json_response({"resourceType": "Bundle", "type": "message"}, status=200)


@pytest.fixture
async def fhir_server() -> AsyncIterator[FhirServer]:
    server = FhirServer()
    app = web.Application()
    app.router.add_post("/oauth/token", server.token)
    app.router.add_post("/fhir/$process-message", server.process_message)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    server.url = f"http://127.0.0.1:{port}"
    yield server
    await runner.cleanup()


@pytest.fixture
async def engine(
    tmp_path: Path, fhir_server: FhirServer
) -> AsyncIterator[tuple[EngineProcess, str, int]]:
    receiver = Receiver()
    await receiver.start()
    source, fhir_port, http_port = f"fhir-{uuid.uuid4().hex[:8]}", free_port(), free_port()
    config = engine_config(tmp_path, [source], receiver.url, http_port=http_port)
    text = config.read_text().replace(
        f"  - {{name: {source}, care_setting: mental_health}}",
        f"  - {{name: {source}, care_setting: mental_health, "
        f"fhir: {{tokens: ['${{CB_TEST_FHIR_TOKEN}}']}}}}",
    )
    destination = f"""
  - name: ehr
    type: fhir
    allow_plain_http: true
    base_url: {fhir_server.url}/fhir
    oauth2: {{token_url: "{fhir_server.url}/oauth/token", client_id: carebridge,
             client_secret: "${{CB_TEST_OAUTH_SECRET}}"}}
"""
    text = text.replace("routes:", destination.rstrip() + "\nroutes:")
    text = text.replace("to: [receiver]", "to: [ehr]")
    text += f"fhir_http: {{host: 127.0.0.1, port: {fhir_port}}}\n"
    config.write_text(text)
    proc = EngineProcess(config, http_port, tmp_path / "engine.log")
    await proc.start(env={"CB_TEST_FHIR_TOKEN": TOKEN, "CB_TEST_OAUTH_SECRET": OAUTH_SECRET})
    yield proc, source, fhir_port
    await proc.terminate()
    await receiver.stop()
    delete_queues([f"carebridge.inbound.{source}"])


async def post(port: int, source: str, body: bytes, token: str | None = TOKEN
               ) -> tuple[int, dict[str, Any]]:  # fmt: skip
    headers = {"Content-Type": "application/fhir+json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"http://127.0.0.1:{port}/fhir/{source}", data=body, headers=headers
        ) as response,
    ):
        return response.status, json.loads(await response.read())


async def test_fhir_in_over_http_and_hl7v2_out_to_a_fhir_server(
    engine: tuple[EngineProcess, str, int], fhir_server: FhirServer
) -> None:
    proc, source, port = engine
    status, answer = await post(port, source, FHIR_MESSAGE)
    assert status == 202, answer
    assert (await post(port, source, FHIR_MESSAGE, token="wrong"))[0] == 401
    assert (await post(port, "no-such-source", FHIR_MESSAGE))[0] == 404
    broken = json.loads(FHIR_MESSAGE)
    broken["entry"][0]["resource"]["eventCoding"] = "not a coding"
    status, outcome = await post(port, source, json.dumps(broken).encode())
    assert status == 422
    assert outcome["issue"][0]["expression"][0].startswith("Bundle.entry[0]")

    # The same kind of payload published straight to RabbitMQ takes the same path, and so
    # does an HL7v2 discharge.
    straight = json.loads(FHIR_MESSAGE)
    straight["identifier"]["value"] = f"straight-{uuid.uuid4().hex}"
    [patient] = patients(1, run="F")
    await publish_all(source, [json.dumps(straight).encode(),
                               adt("A03", patient, "FHIR-HL7-1", datetime.now(UTC))])  # fmt: skip
    await wait_until(lambda: len(fhir_server.bundles) >= 3, what="all three at the server")
    assert fhir_server.requests >= 3, "the first answer was a 503, retried after Retry-After"
    assert fhir_server.repeats == 0
    kinds = {b["entry"][0]["resource"]["eventCoding"]["code"] for b in fhir_server.bundles.values()}
    assert kinds == {"discharge"}
    assert any('"intake.rejected"' in line for line in proc.log_lines())


async def test_a_discharge_event_on_leave_is_refused_over_http_and_over_rabbitmq(
    engine: tuple[EngineProcess, str, int], fhir_server: FhirServer, tmp_path: Path
) -> None:
    """Issue 13 point 1: a MessageHeader discharge on an Encounter that is on leave is 422 over
    HTTP with an OperationOutcome naming both elements, and rejected with the same reason when
    published straight to RabbitMQ. Never a discharge: nothing delivered, no follow-up clock."""
    _, source, port = engine
    on_leave = (REPO / "tests/fixtures/fhir/rejected/discharge_event_on_leave.json").read_bytes()
    status, outcome = await post(port, source, on_leave)
    assert status == 422, outcome
    [issue] = outcome["issue"]
    assert issue["expression"][:2] == [
        "Bundle.entry[0].resource.eventCoding",
        "Bundle.entry[1].resource.status",
    ]
    straight = json.loads(on_leave)
    straight["identifier"]["value"] = f"straight-{uuid.uuid4().hex}"
    await publish_all(source, [json.dumps(straight).encode(), FHIR_MESSAGE])
    await wait_until(lambda: len(fhir_server.bundles) >= 1, what="the real discharge delivered")

    store = await Store.open(StoreConfig(url=f"sqlite+aiosqlite:///{tmp_path / 'carebridge.db'}"))
    try:
        deadline = time.monotonic() + 60
        while True:
            page = await search(store, SearchFilter(source=source, status="rejected"))
            rejected = [m.reason for m in page.rows]
            if len(rejected) == 2 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert rejected == [issue["diagnostics"]] * 2, "both copies kept as rejected"
        now = datetime.now(UTC)
        follow_ups = await listed_follow_ups(store, "open", now, timedelta(hours=4))
    finally:
        await store.close()
    assert len(follow_ups) == 1, "only the real discharge started a clock"
    assert len(fhir_server.bundles) == 1


async def test_a_large_valid_bundle_is_read_whole_and_one_over_the_intakes_limit_is_413(
    engine: tuple[EngineProcess, str, int], fhir_server: FhirServer
) -> None:
    """Issue 15 point 1: a valid 1 MB Bundle (a large narrative) is accepted and delivered, not
    refused as "not valid JSON" from a partial read; a 5 MB one, within the listener's 8 MiB
    but over the intake's 4 MiB, is 413 at once and kept as rejected, never a 202."""
    proc, source, port = engine
    large = json.loads(bundle_of(1_000_000))
    large["identifier"]["value"] = f"large-{uuid.uuid4().hex}"
    status, answer = await post(port, source, json.dumps(large).encode())
    assert status == 202, answer
    await wait_until(lambda: len(fhir_server.bundles) == 1, what="the large one at the server")
    assert not any('"intake.rejected"' in line for line in proc.log_lines())
    too_large = json.loads(bundle_of(5_000_000))
    too_large["identifier"]["value"] = f"too-large-{uuid.uuid4().hex}"
    status, answer = await post(port, source, json.dumps(too_large).encode())
    assert status == 413, answer
    assert "over the 4194304-byte limit" in answer["issue"][0]["diagnostics"]
    await wait_until(lambda: any('"intake.rejected"' in line for line in proc.log_lines()),
                     what="the too-large message kept as rejected")  # fmt: skip
