"""A FHIR listener on a real port in front of the real gateway, publishing into a list."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from adapters.fhir_http import FhirListener
from adapters.http_server import HttpLimits
from engine.fhir_gateway import FhirGateway, FhirSource
from mappings.profile import FeedProfile

REPO = Path(__file__).resolve().parents[2]
MESSAGE = json.loads((REPO / "tests/fixtures/fhir/mh_discharge_message.json").read_bytes())
TOKEN = "inbound-token-for-tests-0123456789"
MAX = 8 * 1024 * 1024
AUTHORISED = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/fhir+json"}
_LINE = "Synthetic narrative for a synthetic patient, no one real. "


def bundle_of(size: int) -> bytes:
    """The fixture's valid discharge message, exactly `size` bytes long: the padding is a
    large but legal narrative on the Patient."""
    bundle = json.loads(json.dumps(MESSAGE))
    patient = next(e["resource"] for e in bundle["entry"]
                   if e["resource"]["resourceType"] == "Patient")  # fmt: skip
    patient["text"] = {"status": "generated", "div": ""}
    wrap = '<div xmlns="http://www.w3.org/1999/xhtml"><p>{}</p></div>'
    patient["text"]["div"] = wrap.format("")
    fill = size - len(json.dumps(bundle).encode())
    assert fill >= 0, "the fixture is bigger than that"
    patient["text"]["div"] = wrap.format((_LINE * (fill // len(_LINE) + 1))[:fill])
    body = json.dumps(bundle).encode()
    assert len(body) == size
    return body


@dataclass
class Published:
    bodies: list[bytes] = field(default_factory=list)

    async def __call__(self, _source: str, body: bytes, _headers: Mapping[str, str]) -> None:
        self.bodies.append(body)


@dataclass
class Fhir:
    port: int
    published: Published


@asynccontextmanager
async def fhir_listener(limits: HttpLimits | None = None,
                        max_body_bytes: int = MAX) -> AsyncIterator[Fhir]:  # fmt: skip
    published = Published()
    gateway = FhirGateway({"mh": FhirSource(FeedProfile(feed="mh"), (TOKEN,))}, published)
    listener = FhirListener("127.0.0.1", 0, admit=gateway.refusal, handle=gateway.handle,
                            max_body_bytes=max_body_bytes, limits=limits)  # fmt: skip
    await listener.start()
    try:
        yield Fhir(listener.port, published)
    finally:
        await listener.close()
