"""The same journeys as FHIR: each HL7v2 message of the simulation re-sent as the UK Core FHIR R4
messaging Bundle the engine itself renders for it (`mappings.fhir.outbound`), with a Bundle
identifier derived from the message's control id; and FHIR inputs that must be refused.
"""

from __future__ import annotations

import dataclasses
import json
import random
import uuid

from engine.simulate.messages import SimMessage
from mappings.fhir.outbound import render_fhir_message
from mappings.inbound import map_message
from mappings.profile import FeedProfile

_NAMESPACE = uuid.UUID("6f1c2a54-2f0e-5b7e-9d1a-6b8e4c3d2a10")
INVALID_FHIR = ("not_json", "no_message_header", "not_a_bundle")


def bundle_id(control_id: str) -> str:
    """The Bundle identifier a simulated message is sent with (its message id in the engine)."""
    return f"urn:uuid:{uuid.uuid5(_NAMESPACE, control_id)}"


def as_fhir(message: SimMessage, rng: random.Random) -> SimMessage:
    """`message` as a FHIR messaging Bundle (or, for one that must be rejected, FHIR that is)."""
    if message.event is None:
        return dataclasses.replace(message, payload=_invalid(rng), variant=message.variant
                                   + "+fhir", message_id=bundle_id(message.control_id))  # fmt: skip
    event = map_message(message.payload, FeedProfile(feed=message.source))
    bundle = render_fhir_message(event, now=message.event.at)
    bundle["identifier"] = {"system": "urn:ietf:rfc:3986", "value": bundle_id(message.control_id)}
    return dataclasses.replace(message, payload=json.dumps(bundle).encode(),
                               message_id=bundle["identifier"]["value"])  # fmt: skip


def _invalid(rng: random.Random) -> bytes:
    kind = rng.choice(INVALID_FHIR)
    if kind == "not_json":
        return b"{this is not JSON"
    if kind == "not_a_bundle":
        return json.dumps({"resourceType": "Patient", "id": "x"}).encode()
    return json.dumps({"resourceType": "Bundle", "type": "message", "entry": []}).encode()
