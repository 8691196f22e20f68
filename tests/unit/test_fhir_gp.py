"""The GP from FHIR (issue 13 point 7): read from a generalPractitioner reference whichever way
it comes, including one that carries only an ODS organisation identifier (no ``type``), and
never dropped silently: an unreadable reference is a warning on the care event.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from mappings.fhir.inbound import map_fhir
from mappings.model import CareEvent
from mappings.profile import FeedProfile

TESTS = Path(__file__).resolve().parents[1]
BUNDLE = json.loads((TESTS / "fixtures/fhir/mh_discharge_message.json").read_bytes())
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
GMP = "https://fhir.hl7.org.uk/Id/gmp-number"
GMC = "https://fhir.hl7.org.uk/Id/gmc-number"
PATIENT = "Bundle.entry[2].resource"
MH = FeedProfile(feed="mh-trust")


def mapped(references: list[dict[str, Any]], *extra: dict[str, Any]) -> CareEvent:
    bundle = copy.deepcopy(BUNDLE)
    patient = bundle["entry"][2]["resource"]
    assert patient["resourceType"] == "Patient"
    patient["generalPractitioner"] = references
    bundle["entry"].extend(extra)
    return map_fhir(json.dumps(bundle).encode(), MH)


def gp_warnings(event: CareEvent) -> list[str]:
    return [w for w in event.warnings if ".generalPractitioner[" in w]


@pytest.mark.parametrize(
    ("reference", "practice", "code"),
    [
        ({"identifier": {"system": ODS, "value": "Y12345"}}, "Y12345", None),
        ({"identifier": {"system": ODS, "value": "Y12345"}, "display": "Surgery"}, "Y12345", None),
        ({"type": "Organization", "identifier": {"system": ODS, "value": "Y12345"}}, "Y12345",
         None),
        (
            {"reference": "Organization/Y12345", "identifier": {"system": ODS, "value": "Y12345"}},
            "Y12345",
            None,
        ),
        ({"identifier": {"system": GMP, "value": "G9999998"}}, None, "G9999998"),
        ({"type": "Practitioner", "identifier": {"system": GMP, "value": "G9999998"}}, None,
         "G9999998"),
    ],
)  # fmt: skip
def test_a_logical_reference_is_read_with_or_without_its_type(
    reference: dict[str, Any], practice: str | None, code: str | None
) -> None:
    event = mapped([reference])
    assert (event.patient.gp_practice_ods, event.patient.gp_code) == (practice, code)
    assert gp_warnings(event) == []


def test_an_ods_only_reference_was_dropped_before_and_is_read_now() -> None:
    # the PDS shape: no type, no reference, only the practice's ODS identifier
    event = mapped([{"identifier": {"system": ODS, "value": "Y12345"}}])
    assert event.patient.gp_practice_ods == "Y12345"


def test_a_practitioner_role_in_the_message_gives_practice_and_gp() -> None:
    role = {
        "fullUrl": "urn:uuid:00000000-0000-4000-8000-0000000000f1",
        "resource": {
            "resourceType": "PractitionerRole",
            "organization": {"identifier": {"system": ODS, "value": "Y54321"}},
            "practitioner": {"identifier": {"system": GMP, "value": "G1234567"}},
        },
    }
    event = mapped([{"reference": role["fullUrl"]}], role)
    assert (event.patient.gp_practice_ods, event.patient.gp_code) == ("Y54321", "G1234567")


@pytest.mark.parametrize(
    "reference",
    [
        {"reference": "Organization/not-in-the-message"},
        {"reference": "urn:uuid:00000000-0000-4000-8000-00000000dead"},
        {"identifier": {"system": "https://trust.example/Id/gp", "value": "LOCAL1"}},
        {"type": "Organization", "identifier": {"system": GMP, "value": "G9999998"}},
        {"type": "Practitioner", "identifier": {"system": GMC, "value": "1234567"}},
        {"display": "Dr Somebody"},
    ],
)
def test_an_unreadable_reference_is_a_warning_never_silently_dropped(
    reference: dict[str, Any],
) -> None:
    event = mapped([reference])
    assert event.patient.gp_practice_ods is None
    [warning] = gp_warnings(event)
    assert warning.startswith(f"{PATIENT}.generalPractitioner[0]: GP reference not readable")


def test_an_organisation_in_the_message_without_an_ods_code_is_a_warning() -> None:
    org = {
        "fullUrl": "urn:uuid:00000000-0000-4000-8000-0000000000f2",
        "resource": {"resourceType": "Organization", "name": "Somewhere Surgery"},
    }
    event = mapped([{"reference": org["fullUrl"]}], org)
    assert event.patient.gp_practice_ods is None
    assert len(gp_warnings(event)) == 1


def test_one_unreadable_reference_beside_a_readable_one_is_still_reported() -> None:
    event = mapped(
        [
            {"reference": "Practitioner/elsewhere"},
            {"identifier": {"system": ODS, "value": "Y12345"}},
        ]
    )
    assert event.patient.gp_practice_ods == "Y12345"
    [warning] = gp_warnings(event)
    assert warning.startswith(f"{PATIENT}.generalPractitioner[0]:")


def test_two_different_practices_keep_the_first_and_say_so() -> None:
    event = mapped(
        [
            {"identifier": {"system": ODS, "value": "Y12345"}},
            {"identifier": {"system": ODS, "value": "Y54321"}},
        ]
    )
    assert event.patient.gp_practice_ods == "Y12345"
    [warning] = gp_warnings(event)
    assert "second, different GP practice" in warning
    assert "Y54321" not in warning
    assert "Y12345" not in warning
