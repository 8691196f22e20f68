"""What each answer of a MESH server means for a delivery, over real sockets: a stand-in MESH
that answers the upload with the status the test chooses (the sandbox cannot be made to answer
429 or 5xx). Transient: 429, 5xx, the mailbox's credentials refused (403: an expired or wrong
password); permanent: MESH's own refusals (400, 417 with MESH error codes). Nothing recorded
as uploaded unless MESH took it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from aiohttp import web

from engine.config import MeshDestination
from engine.delivery.mesh import MeshSender
from engine.delivery.sending import SendResult
from engine.senders import mesh_mailbox
from engine.store import ClaimedDelivery
from engine.store.mesh import MeshUpload
from mappings.clinical.follow_up import DEFAULT_RULES
from mappings.hl7v2.inbound import map_hl7v2
from mappings.model import CareEvent
from mappings.profile import FeedProfile
from tests.adt_factory import adt, patients
from tests.e2e.harness import free_port
from tests.mesh.kit import config

pytestmark = pytest.mark.integration
NOW = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
EVENT = map_hl7v2(adt("A03", patients(1)[0], "F-1", NOW), FeedProfile(feed="mh"))


@dataclass
class StandIn:
    status: int = 202
    body: dict[str, object] = field(default_factory=lambda: {"message_id": "M-1"})
    uploads: list[dict[str, str]] = field(default_factory=list)

    async def outbox(self, request: web.Request) -> web.Response:
        await request.read()
        self.uploads.append(dict(request.headers))
        return web.json_response(self.body, status=self.status)


@dataclass
class Recorded:
    uploading: list[MeshUpload] = field(default_factory=list)
    uploaded: list[str] = field(default_factory=list)

    async def mesh_uploading(self, upload: MeshUpload) -> None:
        self.uploading.append(upload)

    async def mesh_uploaded(self, delivery_id: int, message_id: str, at: datetime) -> None:
        self.uploaded.append(message_id)


@pytest.fixture
async def stand_in() -> AsyncIterator[tuple[StandIn, str]]:
    mesh = StandIn()
    app = web.Application()
    app.router.add_post("/messageexchange/{mailbox}/outbox", mesh.outbox)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield mesh, f"http://127.0.0.1:{port}"
    await runner.cleanup()


def claimed(event: CareEvent) -> ClaimedDelivery:
    return ClaimedDelivery(
        id=1, event_id=event.event_id, destination="gp-mesh", patient_key="nhs:x",
        idempotency_key=f"{event.event_id}.gp-mesh", attempts=0, created_at=NOW,
        kind="discharge", care_setting="mental_health", source="mh",
        body=event.model_dump_json(exclude_none=True),
    )  # fmt: skip


async def send(url: str) -> tuple[SendResult, Recorded]:
    dest = config(url, extra="\n    mailboxes: {B12345: X26GP0001}").destination("gp-mesh")
    assert isinstance(dest, MeshDestination)
    recorded = Recorded()

    async def no_original(_: str) -> CareEvent | None:
        return None

    sender = MeshSender(dest, mesh_mailbox(dest), recorded, DEFAULT_RULES, no_original)
    return await sender.send(claimed(EVENT)), recorded


async def test_an_upload_mesh_takes_is_delivered_with_its_headers(
    stand_in: tuple[StandIn, str],
) -> None:
    mesh, url = stand_in
    result, recorded = await send(url)
    assert result.outcome == "delivered"
    assert recorded.uploaded == ["M-1"]
    [headers] = mesh.uploads
    assert headers["Mex-To"] == "X26GP0001"
    assert headers["Mex-WorkflowID"] == "TOC_FHIR_MH_DISCH"
    assert headers["Mex-LocalID"] == f"{EVENT.event_id}.gp-mesh"
    assert headers["Authorization"].startswith("NHSMESH ")


@pytest.mark.parametrize(
    ("status", "body", "outcome", "says"),
    [(503, {"error": "down"}, "transient", "503"),
     (500, {}, "transient", "500"),
     (429, {"detail": [{"code": "", "msg": "slow down"}]}, "transient", "429"),
     (403, {"detail": [{"code": "", "msg": "Invalid Authentication Token"}]}, "transient",
      "credentials"),
     (417, {"detail": [{"event": "SEND", "code": "12", "msg": "Unregistered to address"}]},
      "permanent", "MESH error 12: Unregistered to address"),
     (400, {"detail": [{"code": "", "msg": "bad header"}]}, "permanent", "bad header")],
)  # fmt: skip
async def test_what_each_refusal_means(
    stand_in: tuple[StandIn, str], status: int, body: dict[str, object], outcome: str, says: str
) -> None:
    mesh, url = stand_in
    mesh.status, mesh.body = status, body
    result, recorded = await send(url)
    assert result.outcome == outcome
    assert says in (result.detail or "")
    assert recorded.uploaded == []  # nothing recorded as uploaded
    assert len(recorded.uploading) == 1  # but the local id was recorded before the attempt
