from typing import Any

import pytest
import yaml

from mappings.code_tables import CODED_ELEMENTS, load_code_table, packaged_tables, table_element
from mappings.model import CareSetting, LegalStatusContext
from mappings.profile import FeedProfile, FieldRef, LocalField, ProfileError


def problems(data: Any) -> list[str]:
    with pytest.raises(ProfileError) as caught:
        FeedProfile.from_mapping(data)
    assert str(caught.value) == "\n".join(caught.value.problems)
    assert isinstance(caught.value, ValueError)
    return caught.value.problems


def test_a_profile_needs_only_the_feed_and_defaults_to_itk() -> None:
    profile = FeedProfile.from_mapping({"feed": "mh-trust"})
    assert profile == FeedProfile(feed="mh-trust")
    assert (profile.care_setting, profile.timezone, profile.ward_component) == (
        CareSetting.UNKNOWN,
        "Europe/London",
        2,
    )
    assert (dict(profile.code_tables), profile.legal_status, profile.risk_flags) == ({}, (), ())


def test_a_full_profile_from_yaml() -> None:
    data = yaml.safe_load(
        """
        feed: mh-rio
        care_setting: mental_health
        timezone: Europe/London
        ward_component: 1
        code_tables:
          discharge_destination: {"HOME": "19", "PRISON": "38"}
          legal_status: zu5-legal-status
        legal_status:
          - field: ZU5-2
            context: admission
            start: ZU5-4
          - ZMH-2.1
        risk_flags:
          - field: OBX-5
            observation: RISK
        """
    )
    profile = FeedProfile.from_mapping(data)
    assert profile.care_setting is CareSetting.MENTAL_HEALTH
    assert profile.ward_component == 1
    assert dict(profile.code_tables["discharge_destination"]) == {"HOME": "19", "PRISON": "38"}
    assert profile.code_tables["legal_status"]["2"] == "02"
    assert profile.legal_status == (
        LocalField(
            FieldRef("ZU5", 2),
            context=LegalStatusContext.ADMISSION,
            start=FieldRef("ZU5", 4),
        ),
        LocalField(FieldRef("ZMH", 2, 1)),
    )
    assert profile.risk_flags == (LocalField(FieldRef("OBX", 5), observation="RISK"),)
    assert profile.risk_flags[0].location == "OBX[RISK]-5"


def test_every_problem_is_reported_with_its_path() -> None:
    assert problems(
        {
            "feed": "",
            "colour": "blue",
            "care_setting": "hospice",
            "timezone": "Mars/Olympus",
            "ward_component": 3,
            "code_tables": {
                "discharge_destination": {"HOME": "17", 1: "19"},
                "discharge_method": "zu5-legal-status",
                "admission_method": "no-such-table",
                "diet": {},
            },
            "legal_status": [{"field": "ZU5", "context": "weekly"}, {"field": "OBX-5"}],
            "risk_flags": [{"field": "ZMH-2", "observation": "X", "start": "ZMH-3"}],
        }
    ) == [
        "ward_component: must be 1 (PV1-3.1) or 2 (PV1-3.2, the ITK default)",
        "code_tables.admission_method: no packaged code table 'no-such-table'; known:"
        " itk-0112-discharge-method, mha-section-labels, zu5-legal-status",
        "code_tables.discharge_method: table 'zu5-legal-status' is for legal_status,"
        " not discharge_method",
        "code_tables.discharge_destination.HOME: '17' is not in the national discharge"
        " destination list",
        "code_tables.discharge_destination.1: local codes must be quoted strings",
        "code_tables.diet: unknown setting",
        "legal_status[0].field: 'ZU5' is not a field such as ZU5-2 or ZMH-3.1",
        "legal_status[0].context: Input should be 'admission', 'discharge' or 'current'",
        "legal_status[1].observation: required for an OBX field: the OBX-3 identifier to match",
        "risk_flags[0].start: unknown setting",
        "feed: String should have at least 1 character",
        "care_setting: Input should be 'mental_health', 'acute', 'community' or 'unknown'",
        "timezone: 'Mars/Olympus' is not an IANA time zone such as Europe/London",
        "colour: unknown setting",
    ]


def test_a_yaml_number_as_a_code_is_refused_rather_than_silently_changed() -> None:
    # YAML reads an unquoted 01 as the number 1: accepting it would map "1", not "01".
    data = yaml.safe_load("feed: x\ncode_tables:\n  legal_status: {01: '01'}\n")
    assert problems(data) == ["code_tables.legal_status.1: local codes must be quoted strings"]


@pytest.mark.parametrize("ward_component", [True, "1", 0])
def test_ward_component_is_exactly_1_or_2(ward_component: object) -> None:
    assert problems({"feed": "x", "ward_component": ward_component})[0].startswith(
        "ward_component:"
    )


@pytest.mark.parametrize(("text", "ref"), [("ZU5-2", ("ZU5", 2, 1)), ("ZMH-13.2", ("ZMH", 13, 2))])
def test_field_references(text: str, ref: tuple[str, int, int]) -> None:
    parsed = FieldRef.parse(text)
    assert (parsed.segment, parsed.field, parsed.component) == ref
    assert str(parsed) == text


@pytest.mark.parametrize("text", ["ZU5", "ZU5-0", "zu5-2", "ZU5-2.0", "ZU5.2", "ZU5-2-1"])
def test_malformed_field_references_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a field"):
        FieldRef.parse(text)


# --- code tables ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", packaged_tables())
def test_every_packaged_table_loads_into_its_national_list(name: str) -> None:
    element = CODED_ELEMENTS[table_element(name)]
    table = load_code_table(name)
    assert table
    assert all(code in element.known for code in table.values())


def test_the_packaged_tables() -> None:
    assert packaged_tables() == [
        "itk-0112-discharge-method",
        "mha-section-labels",
        "zu5-legal-status",
    ]
    assert load_code_table("zu5-legal-status")["3"] == "03"
    assert load_code_table("mha-section-labels")["S136"] == "20"


def test_a_loaded_table_is_a_copy() -> None:
    load_code_table("zu5-legal-status")["3"] = "99"
    assert load_code_table("zu5-legal-status")["3"] == "03"


@pytest.mark.parametrize("name", ["../profile", "ZU5", "no-such-table", ""])
def test_only_packaged_tables_can_be_loaded(name: str) -> None:
    with pytest.raises(ValueError, match="code table"):
        load_code_table(name)
