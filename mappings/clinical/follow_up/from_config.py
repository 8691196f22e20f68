"""Follow-up rules from configuration: `FollowUpRuleSettings` is one rule as the YAML config
writes it (a pydantic model: every mistake at its exact path), `FollowUpRules` the list;
`rules_from_mapping` reads plain data into the pure `FollowUpRule`s, or raises `RuleError`
listing every problem at its path.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainValidator,
    StrictBool,
    StrictInt,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from mappings.clinical.follow_up.rules import EXCLUDED_DESTINATIONS, FollowUpRule
from mappings.codes import DISCHARGE_DESTINATIONS
from mappings.model import CareSetting
from mappings.settings import Duration, Strict, problem_at, problem_lines


class RuleError(ValueError):
    """Follow-up rules in the configuration are invalid; `problems` holds ``path: reason`` each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _positive(duration: timedelta) -> timedelta:
    if duration <= timedelta(0):
        raise ValueError("must be longer than zero")
    return duration


def _quoted_code(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(
            f"{value!r}: must be a quoted code such as '19' (a YAML number loses leading zeros)"
        )
    return value.strip()


def _discharge_destination(code: str) -> str:
    if code not in DISCHARGE_DESTINATIONS:
        raise ValueError(f"{code!r} is not an NHS Data Dictionary discharge destination code")
    return code


def _as_list(value: object) -> object:
    return [value] if isinstance(value, str) else value


def _some(settings: tuple[CareSetting, ...]) -> tuple[CareSetting, ...]:
    if not settings:
        raise ValueError("must name at least one care setting")
    return settings


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Code = Annotated[str, PlainValidator(_quoted_code)]
"""A code as quoted text: a YAML number would silently lose a leading zero."""


class FollowUpRuleSettings(Strict):
    """One follow-up rule as the config writes it; omitted settings default as `FollowUpRule`."""

    name: Text
    standard: Text
    due_after: Annotated[Duration, AfterValidator(_positive)]
    care_settings: Annotated[
        tuple[CareSetting, ...], BeforeValidator(_as_list), AfterValidator(_some)
    ] = (CareSetting.MENTAL_HEALTH,)
    inpatient_only: StrictBool = True
    min_age_years: Annotated[StrictInt, Field(ge=0, le=150)] | None = 18
    max_age_years: Annotated[StrictInt, Field(ge=1, le=150)] | None = None
    """Only patients younger than this at discharge (18: children and young people)."""
    adult_treatment_functions: tuple[Code, ...] = ()
    high_risk: StrictBool | None = None
    """True: only stays with a risk flag; false: only without; null: either."""
    excluded_destinations: tuple[Annotated[Code, AfterValidator(_discharge_destination)], ...] = (
        tuple(EXCLUDED_DESTINATIONS)
    )

    @model_validator(mode="after")
    def _ages_in_order(self) -> FollowUpRuleSettings:
        low, high = self.min_age_years, self.max_age_years
        if low is not None and high is not None and low >= high:
            raise problem_at("rule", ("max_age_years",), f"must be more than min_age_years ({low})")
        return self

    def rule(self) -> FollowUpRule:
        return FollowUpRule(**dict(self))


def _some_with_unique_names(
    rules: tuple[FollowUpRuleSettings, ...],
) -> tuple[FollowUpRuleSettings, ...]:
    if not rules:
        raise ValueError("at least one rule is required (none would follow up nobody)")
    seen: set[str] = set()
    for index, rule in enumerate(rules):
        if rule.name in seen:
            raise problem_at("rules", (index, "name"), f"{rule.name!r} is used by an earlier rule")
        seen.add(rule.name)
    return rules


def _a_list(value: object) -> object:
    if not isinstance(value, list | tuple):
        raise ValueError("must be a list of rules")
    return value


FollowUpRules = Annotated[
    tuple[FollowUpRuleSettings, ...],
    BeforeValidator(_a_list),
    AfterValidator(_some_with_unique_names),
]
"""The rules in order (first match wins): at least one, each with a name of its own."""

_RULES: TypeAdapter[tuple[FollowUpRuleSettings, ...]] = TypeAdapter(FollowUpRules)


def rules_from_mapping(data: Any) -> tuple[FollowUpRule, ...]:
    """Rules from plain data (YAML config), in order; raises `RuleError` listing every problem.

    ``name``, ``standard`` and ``due_after`` are required; the rest default as `FollowUpRule`::

        - name: mh-adult-inpatient-48h-high-risk
          standard: 48h-high-risk
          due_after: 48h                 # 72h, 48h, 7d, 90m, or seconds
          care_settings: [mental_health]
          inpatient_only: true
          min_age_years: 18              # null: any age
          max_age_years: null            # 18: only under-18s (children and young people)
          adult_treatment_functions: ["710", "712", "715", "723"]
          high_risk: true                # true | false | null
          excluded_destinations: ["30", "37", "38", "48", "49", "50", "53", "79", "84"]

    Codes must be quoted strings: a YAML number would silently lose a leading zero.
    """
    try:
        return tuple(settings.rule() for settings in _RULES.validate_python(data))
    except ValidationError as exc:
        raise RuleError(problem_lines(exc, "rules")) from None
