"""Leave is never a discharge (issue 13 point 1): a FHIR MessageHeader event that the
Encounter's own status and period contradict is refused, naming both elements, on every path.

Fixtures in tests/fixtures/fhir/rejected, their OperationOutcomes in tests/golden/fhir/rejected.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from engine.config import parse_config
from engine.fhir_gateway import FhirGateway, FhirSource
from engine.preparation import prepare
from mappings.clinical.follow_up import DEFAULT_RULES
from mappings.clinical.notification import is_notifiable
from mappings.errors import MappingError
from mappings.fhir.inbound import map_fhir
from mappings.fhir.outcome import for_mapping_error, http_status
from mappings.model import EventKind
from mappings.profile import FeedProfile
from tests.golden_util import assert_golden
from tests.memory_broker import gateway_publish, inbound_broker, kept

TESTS = Path(__file__).resolve().parents[1]
REJECTED = sorted((TESTS / "fixtures/fhir/rejected").glob("*.json"))
GOLDEN = TESTS / "golden/fhir/rejected"
DISCHARGE = json.loads((TESTS / "fixtures/fhir/mh_discharge_message.json").read_bytes())
MH = FeedProfile(feed="mh-trust")
CONFIG = parse_config(
    """
sources: [{name: mh-trust, care_setting: mental_health}]
destinations: [{name: team, type: webhook, url: "https://team.example/x"}]
routes: [{name: all, to: [team]}]
""",
    env={},
)
HEADER, ENCOUNTER = "Bundle.entry[0].resource", "Bundle.entry[1].resource"


def encounter_of(bundle: dict[str, Any]) -> dict[str, Any]:
    resource: dict[str, Any] = bundle["entry"][1]["resource"]
    assert resource["resourceType"] == "Encounter"
    return resource


def variant(status: str, period: dict[str, str], event: dict[str, str] | None = None) -> bytes:
    bundle = copy.deepcopy(DISCHARGE)
    encounter_of(bundle).update(status=status, period=period)
    if event is not None:
        bundle["entry"][0]["resource"]["eventCoding"] = event
    return json.dumps(bundle).encode()


START = {"start": "2026-01-14T09:15:00+00:00"}
ENDED = {**START, "end": "2026-02-02T10:30:00+00:00"}
DAVINCI = "http://hl7.org/fhir/us/davinci-alerts/CodeSystem/notification-event"


@pytest.mark.parametrize("fixture", REJECTED, ids=lambda p: p.stem)
def test_contradicted_event_is_refused_with_an_outcome_naming_both(fixture: Path) -> None:
    with pytest.raises(MappingError) as caught:
        map_fhir(fixture.read_bytes(), MH)
    outcome = for_mapping_error(caught.value)
    assert http_status(caught.value) == 422
    [issue] = outcome["issue"]
    assert issue["code"] == "business-rule"
    assert issue["expression"][:2] == [f"{HEADER}.eventCoding", f"{ENCOUNTER}.status"]
    assert_golden(outcome, GOLDEN / fixture.name)


@pytest.mark.parametrize(
    ("status", "period", "names_end"),
    [
        ("onleave", START, True),
        ("onleave", ENDED, False),
        ("in-progress", START, True),
        ("in-progress", ENDED, False),
        ("arrived", START, True),
        ("triaged", START, True),
        ("planned", START, True),
        ("cancelled", START, True),
        ("unknown", START, True),
    ],
)
def test_a_discharge_event_needs_an_encounter_that_ended(
    status: str, period: dict[str, str], names_end: bool
) -> None:
    event = {"system": DAVINCI, "code": "notification-discharge"}
    with pytest.raises(MappingError) as caught:
        map_fhir(variant(status, period, event), MH)
    expressions = for_mapping_error(caught.value)["issue"][0]["expression"]
    assert f"{ENCOUNTER}.status" in expressions
    assert (f"{ENCOUNTER}.period.end" in expressions) is names_end
    assert f"'{status}'" in caught.value.reason


@pytest.mark.parametrize(("status", "period"), [("finished", ENDED), ("unknown", ENDED)])
def test_a_discharge_event_on_an_ended_encounter_is_a_discharge(
    status: str, period: dict[str, str]
) -> None:
    event = map_fhir(variant(status, period), MH)
    assert event.kind is EventKind.DISCHARGE


def test_a_finished_encounter_without_period_end_is_still_a_discharge_with_a_warning() -> None:
    event = map_fhir(variant("finished", START), MH)
    assert event.kind is EventKind.DISCHARGE
    assert any("discharge date/time missing" in w for w in event.warnings)


def test_without_a_header_event_an_onleave_encounter_is_leave_and_never_notified() -> None:
    unknown_event = {"system": "https://trust.example/events", "code": "adt"}
    event = map_fhir(variant("onleave", START, unknown_event), MH)
    assert event.kind is EventKind.LEAVE_START
    assert not is_notifiable(event)


def test_through_rabbitmq_intake_keeps_it_rejected_with_the_same_reason_and_no_clock() -> None:
    fixture = next(p for p in REJECTED if p.stem == "discharge_event_on_leave")
    with pytest.raises(MappingError) as caught:
        map_fhir(fixture.read_bytes(), MH)
    prepared = prepare(
        "mh-trust",
        fixture.read_bytes(),
        config=CONFIG,
        profiles={"mh-trust": MH},
        received_at=datetime(2026, 2, 2, 11, tzinfo=UTC),
        follow_up_rules=DEFAULT_RULES,
    )
    assert prepared.event is None
    assert prepared.record.accepted is None
    assert prepared.record.reason == caught.value.reason
    assert prepared.record.error_location == f"{HEADER}.eventCoding"


@dataclass(frozen=True)
class Request:
    body: bytes
    source: str = "mh-trust"
    bearer_token: str | None = "s3cret"
    client_cn: str | None = None
    peer: str = "127.0.0.1"


async def test_through_the_http_gateway_it_is_422_and_kept() -> None:
    fixture = next(p for p in REJECTED if p.stem == "discharge_event_on_leave")
    broker = inbound_broker("mh-trust")
    publish = gateway_publish(broker, "application/fhir+json")
    gateway = FhirGateway({"mh-trust": FhirSource(MH, ("s3cret",))}, publish)
    status, body, _ = await gateway.handle(Request(fixture.read_bytes()))
    assert status == 422
    assert json.loads(body) == json.loads((GOLDEN / fixture.name).read_text())
    assert kept(broker, "mh-trust") == [fixture.read_bytes()]  # kept in the message log as rejected
