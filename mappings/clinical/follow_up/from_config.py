"""Follow-up rules from configuration: `rules_from_mapping` reads plain data (YAML) into
`FollowUpRule`s, or raises `RuleError` listing every problem at its path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, Final

from mappings.clinical.follow_up.rules import EXCLUDED_DESTINATIONS, HOUR_SECONDS, FollowUpRule
from mappings.codes import DISCHARGE_DESTINATIONS
from mappings.model import CareSetting


class RuleError(ValueError):
    """Follow-up rules in the configuration are invalid; `problems` holds ``path: reason`` each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNITS: Final = {"s": 1, "m": 60, "h": HOUR_SECONDS, "d": 24 * HOUR_SECONDS, None: 1}
_KEYS: Final = (
    "name",
    "standard",
    "due_after",
    "care_settings",
    "inpatient_only",
    "min_age_years",
    "adult_treatment_functions",
    "high_risk",
    "excluded_destinations",
)


def rules_from_mapping(data: Sequence[Mapping[str, Any]]) -> tuple[FollowUpRule, ...]:
    """Rules from plain data (YAML config), in order; raises `RuleError` listing every problem.

    ``name``, ``standard`` and ``due_after`` are required; the rest default as `FollowUpRule`::

        - name: mh-adult-inpatient-48h-high-risk
          standard: 48h-high-risk
          due_after: 48h                 # 72h, 48h, 7d, 90m, or seconds
          care_settings: [mental_health]
          inpatient_only: true
          min_age_years: 18              # null: any age
          adult_treatment_functions: ["710", "712", "715", "723"]
          high_risk: true                # true | false | null
          excluded_destinations: ["30", "37", "38", "48", "49", "50", "53", "79", "84"]

    Codes must be quoted strings: a YAML number would silently lose a leading zero.
    """
    problems: list[str] = []
    if isinstance(data, str | bytes | Mapping) or not isinstance(data, Sequence):
        raise RuleError(["rules: must be a list of rules"])
    if not data:
        raise RuleError(["rules: at least one rule is required (none would follow up nobody)"])
    rules: list[FollowUpRule] = []
    names: set[str] = set()
    for index, item in enumerate(data):
        rule = _RuleReader(f"[{index}]", item, problems).rule()
        if rule is None:
            continue
        if rule.name in names:
            problems.append(f"[{index}].name: {rule.name!r} is used by an earlier rule")
        names.add(rule.name)
        rules.append(rule)
    if problems:
        raise RuleError(problems)
    return tuple(rules)


class _RuleReader:
    def __init__(self, path: str, data: Any, problems: list[str]) -> None:
        self.path = path
        self.data = data
        self.problems = problems

    def problem(self, key: str, reason: str) -> None:
        self.problems.append(f"{self.path}.{key}: {reason}" if key else f"{self.path}: {reason}")

    def rule(self) -> FollowUpRule | None:
        if not isinstance(self.data, Mapping):
            self.problem("", "must be a mapping with name, standard and due_after")
            return None
        before = len(self.problems)
        for key in sorted(set(map(str, self.data)) - set(_KEYS)):
            self.problem(key, f"unknown setting; expected one of {', '.join(_KEYS)}")
        rule = FollowUpRule(
            name=self._text("name"),
            standard=self._text("standard"),
            due_after=self._duration(),
            care_settings=self._care_settings(),
            inpatient_only=self._flag("inpatient_only", default=True),
            min_age_years=self._age(),
            adult_treatment_functions=self._codes("adult_treatment_functions", ()),
            high_risk=self._high_risk(),
            excluded_destinations=self._destinations(),
        )
        return rule if len(self.problems) == before else None

    def _text(self, key: str) -> str:
        value = self.data.get(key)
        if not isinstance(value, str) or not value.strip():
            self.problem(key, "required: a non-empty text")
            return ""
        return value.strip()

    def _duration(self) -> timedelta:
        value = self.data.get("due_after")
        seconds: float | None = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            seconds = float(value)
        elif isinstance(value, str) and (match := _DURATION.match(value)):
            seconds = float(match[1]) * _UNITS[match[2]]
        if seconds is None:
            self.problem("due_after", "required: a duration such as 72h, 48h, 7d or seconds")
            return timedelta()
        if seconds <= 0:
            self.problem("due_after", "must be longer than zero")
        return timedelta(seconds=seconds)

    def _care_settings(self) -> tuple[CareSetting, ...]:
        value = self.data.get("care_settings", [CareSetting.MENTAL_HEALTH.value])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list | tuple) or not value:
            self.problem("care_settings", "must be a non-empty list of care settings")
            return ()
        settings: list[CareSetting] = []
        for index, item in enumerate(value):
            try:
                settings.append(CareSetting(item))
            except ValueError:
                expected = ", ".join(s.value for s in CareSetting)
                self.problem(f"care_settings[{index}]", f"{item!r}: expected one of {expected}")
        return tuple(settings)

    def _flag(self, key: str, *, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            self.problem(key, "must be true or false")
            return default
        return value

    def _age(self) -> int | None:
        value = self.data.get("min_age_years", 18)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 150:
            self.problem("min_age_years", "must be a whole number of years (0-150) or null")
            return 18
        return value

    def _high_risk(self) -> bool | None:
        value = self.data.get("high_risk")
        if value is not None and not isinstance(value, bool):
            self.problem("high_risk", "must be true (only with a risk flag), false or null")
            return None
        return value

    def _codes(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self.data.get(key, list(default))
        if not isinstance(value, list | tuple):
            self.problem(key, "must be a list of quoted codes")
            return default
        codes: list[str] = []
        for index, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                self.problem(
                    f"{key}[{index}]",
                    f"{item!r}: must be a quoted code such as '19' "
                    "(a YAML number loses leading zeros)",
                )
                continue
            codes.append(item.strip())
        return tuple(codes)

    def _destinations(self) -> tuple[str, ...]:
        before = len(self.problems)
        codes = self._codes("excluded_destinations", tuple(EXCLUDED_DESTINATIONS))
        if len(self.problems) != before:
            return codes
        raw = self.data.get("excluded_destinations", list(EXCLUDED_DESTINATIONS))
        for index, code in enumerate(raw):
            if code.strip() not in DISCHARGE_DESTINATIONS:
                self.problem(
                    f"excluded_destinations[{index}]",
                    f"{code!r} is not an NHS Data Dictionary discharge destination code",
                )
        return codes
