# ruff: noqa: E501  (a table of cases, one per line, reads best unwrapped)
"""Feed profiles and follow-up rules in the config: every kind of mistake is reported by the
pydantic models at the exact path of the bad value, with its reason (and nothing else)."""

from __future__ import annotations

import pytest

from engine.config import ConfigError, parse_config


def only_problem(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, env={})
    [problem] = caught.value.problems
    return problem


def profile(setting: str) -> str:
    return f"sources:\n  - name: mh-trust\n    profile: {setting}\n"


HERE = "sources[mh-trust].profile"

PROFILE_MISTAKES = [
    ("{colour: blue}", f"{HERE}.colour: unknown setting"),
    ("{feed: x}", f"{HERE}.feed: set on the source itself, not in its profile"),
    ("{care_setting: acute}", f"{HERE}.care_setting: set on the source itself, not in its profile"),
    ("{ward_component: 3}", f"{HERE}.ward_component: must be 1 (PV1-3.1) or 2 (PV1-3.2, the ITK default)"),
    ("{ward_component: true}", f"{HERE}.ward_component: must be 1 (PV1-3.1) or 2 (PV1-3.2, the ITK default)"),
    ("{code_tables: 7}", f"{HERE}.code_tables: Input should be a valid dictionary or instance of CodeTablesSettings"),
    ("{code_tables: {diet: {}}}", f"{HERE}.code_tables.diet: unknown setting"),
    ("{code_tables: {legal_status: no-such}}", f"{HERE}.code_tables.legal_status: no packaged code table 'no-such'; known: itk-0112-discharge-method, mha-section-labels, zu5-legal-status"),
    ("{code_tables: {discharge_method: zu5-legal-status}}", f"{HERE}.code_tables.discharge_method: table 'zu5-legal-status' is for legal_status, not discharge_method"),
    ("{code_tables: {discharge_destination: {HOME: '17'}}}", f"{HERE}.code_tables.discharge_destination.HOME: '17' is not in the national discharge destination list"),
    ("{code_tables: {discharge_destination: {HOME: 19}}}", f"{HERE}.code_tables.discharge_destination.HOME: the national code must be a quoted string"),
    ("{code_tables: {legal_status: {01: '01'}}}", f"{HERE}.code_tables.legal_status.1: local codes must be quoted strings"),
    ("{code_tables: {legal_status: [a]}}", f"{HERE}.code_tables.legal_status: Input should be a valid dictionary"),
    ("{legal_status: 7}", f"{HERE}.legal_status: Input should be a valid tuple"),
    ("{legal_status: [ZU5]}", f"{HERE}.legal_status[0].field: 'ZU5' is not a field such as ZU5-2 or ZMH-3.1"),
    ("{legal_status: [{field: 5}]}", f"{HERE}.legal_status[0].field: must be a field such as ZU5-2 or ZMH-3.1"),
    ("{legal_status: [{context: admission}]}", f"{HERE}.legal_status[0].field: Field required"),
    ("{legal_status: [ZU5-2, {field: ZU5-2, context: weekly}]}", f"{HERE}.legal_status[1].context: Input should be 'admission', 'discharge' or 'current'"),
    ("{legal_status: {field: ZU5-2, start: ZMH-4}}", f"{HERE}.legal_status[0].start: must be a field of ZU5, like the value"),
    ("{legal_status: {field: ZU5-2, end: ZU5-x}}", f"{HERE}.legal_status[0].end: 'ZU5-x' is not a field such as ZU5-2 or ZMH-3.1"),
    ("{risk_flags: OBX-5}", f"{HERE}.risk_flags[0].observation: required for an OBX field: the OBX-3 identifier to match"),
    ("{risk_flags: [{field: ZMH-3, observation: RISK}]}", f"{HERE}.risk_flags[0].observation: only for an OBX field"),
    ("{risk_flags: [{field: OBX-5, observation: ''}]}", f"{HERE}.risk_flags[0].observation: String should have at least 1 character"),
    ("{risk_flags: [{field: ZMH-3, context: current}]}", f"{HERE}.risk_flags[0].context: unknown setting"),
]  # fmt: skip


@pytest.mark.parametrize(("setting", "expected"), PROFILE_MISTAKES)
def test_each_kind_of_profile_mistake_has_its_exact_path_and_reason(
    setting: str, expected: str
) -> None:
    assert only_problem(profile(setting)) == expected


def test_a_source_without_a_valid_name_is_named_by_its_index() -> None:
    text = "sources:\n  - {name: Bad Name, profile: {ward_component: 3}}\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, env={})
    assert "sources[0].profile.ward_component: must be 1 (PV1-3.1) or 2 (PV1-3.2, the ITK " \
        "default)" in caught.value.problems  # fmt: skip


def rules(text: str) -> str:
    return f"sources: [{{name: a}}]\nfollow_up:\n  rules: {text}\n"


OK = "name: r, standard: 72h, due_after: 72h"
AT = "follow_up.rules"

RULE_MISTAKES = [
    ("{name: r}", f"{AT}: must be a list of rules"),
    ("[]", f"{AT}: at least one rule is required (none would follow up nobody)"),
    ("[7]", f"{AT}[0]: Input should be a valid dictionary or instance of FollowUpRuleSettings"),
    ("[{standard: 72h, due_after: 72h}]", f"{AT}[0].name: Field required"),
    ("[{name: ' ', standard: 72h, due_after: 72h}]", f"{AT}[0].name: String should have at least 1 character"),
    ("[{name: r, due_after: 72h}]", f"{AT}[0].standard: Field required"),
    ("[{name: r, standard: 72h, due_after: soon}]", f"{AT}[0].due_after: expected a duration such as 30s, 5m or 72h"),
    ("[{name: r, standard: 72h, due_after: 0}]", f"{AT}[0].due_after: must be longer than zero"),
    (f"[{{{OK}, care_settings: []}}]", f"{AT}[0].care_settings: must name at least one care setting"),
    (f"[{{{OK}, care_settings: [moon]}}]", f"{AT}[0].care_settings[0]: Input should be 'mental_health', 'acute', 'community' or 'unknown'"),
    (f"[{{{OK}, inpatient_only: yes please}}]", f"{AT}[0].inpatient_only: Input should be a valid boolean"),
    (f"[{{{OK}, min_age_years: 200}}]", f"{AT}[0].min_age_years: Input should be less than or equal to 150"),
    (f"[{{{OK}, min_age_years: '18'}}]", f"{AT}[0].min_age_years: Input should be a valid integer"),
    (f"[{{{OK}, high_risk: maybe}}]", f"{AT}[0].high_risk: Input should be a valid boolean"),
    (f"[{{{OK}, adult_treatment_functions: ['710', 712]}}]", f"{AT}[0].adult_treatment_functions[1]: 712: must be a quoted code such as '19' (a YAML number loses leading zeros)"),
    (f"[{{{OK}, excluded_destinations: ['77']}}]", f"{AT}[0].excluded_destinations[0]: '77' is not an NHS Data Dictionary discharge destination code"),
    (f"[{{{OK}, colour: red}}]", f"{AT}[0].colour: unknown setting"),
    (f"[{{{OK}}}, {{{OK}}}]", f"{AT}[1].name: 'r' is used by an earlier rule"),
]  # fmt: skip


@pytest.mark.parametrize(("setting", "expected"), RULE_MISTAKES)
def test_each_kind_of_rule_mistake_has_its_exact_path_and_reason(
    setting: str, expected: str
) -> None:
    assert only_problem(rules(setting)) == expected
