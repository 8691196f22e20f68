"""Settings read from configuration: the one strict base of every config model (the engine's
config builds on it too), durations, and problems reported as ``path: reason`` lines.

A feed profile (`mappings.profile`) and the follow-up rules (`mappings.clinical.follow_up`) are
pydantic models on `Strict`, so a mistake is reported at the exact path of the bad value, for
the engine's ``carebridge check-config`` as for a test that builds a profile from a dict.

Durations are seconds (``30``) or a number with a unit (``250ms``, ``5s``, ``15m``, ``72h``,
``2d``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import timedelta
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

__all__ = [
    "Duration",
    "Strict",
    "parse_duration",
    "path_of",
    "problem_at",
    "problem_lines",
    "problems_at",
    "reason_of",
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_PREFIXES = ("Value error, ", "Assertion failed, ")


class Strict(BaseModel):
    """The base of every config model: unknown keys are errors, and settings never change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


_LONGEST_DURATION_S = 100_000 * 86_400.0


def _duration(seconds: float) -> timedelta:
    """`seconds` as a timedelta; a precise refusal, not Python's OverflowError, for an infinite
    or absurdly long one (found by the config_loader fuzz target)."""
    if not math.isfinite(seconds) or abs(seconds) > _LONGEST_DURATION_S:
        raise ValueError("a duration of at most 100000d")
    return timedelta(seconds=seconds)


def parse_duration(value: object) -> object:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m or 72h")
    if isinstance(value, int | float):
        return _duration(float(value))
    if isinstance(value, str) and (m := _DURATION.match(value)):
        return _duration(float(m.group(1)) * _UNITS[m.group(2)])
    raise ValueError("expected a duration such as 30s, 5m or 72h")


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def problem_at(model: str, loc: tuple[str | int, ...], reason: str) -> ValidationError:
    """A problem a validator finds below the value it checks (a rule's name that an earlier
    rule has, the observation an OBX field needs), raised at its exact path: pydantic puts the
    path of the checked value in front of `loc`."""
    return problems_at(model, [(loc, reason)])


def problems_at(model: str, found: Sequence[tuple[tuple[str | int, ...], str]]) -> ValidationError:
    """Several problems below the value a validator checks, each at its path (`problem_at`)."""
    details = [
        InitErrorDetails(
            type=PydanticCustomError("config", "{reason}", {"reason": reason}), loc=loc, input=None
        )
        for loc, reason in found
    ]
    return ValidationError.from_exception_data(model, details)


def path_of(loc: Sequence[str | int]) -> str:
    """``rules[1].care_settings[0]`` for pydantic's ``("rules", 1, "care_settings", 0)``."""
    path = ""
    for i, part in enumerate(loc):
        if part == "[key]":  # pydantic's mark that a mapping's key, not its value, is wrong
            continue
        if isinstance(part, int) and loc[i + 1 : i + 2] != ("[key]",):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def reason_of(error: ErrorDetails) -> str:
    """Pydantic's message without the "Value error, " it puts before a validator's own words."""
    if error["type"] == "extra_forbidden":
        return "unknown setting"
    message = error["msg"]
    for prefix in _PREFIXES:
        message = message.removeprefix(prefix)
    return message


def problem_lines(error: ValidationError, under: str = "") -> list[str]:
    """One ``path: reason`` line per problem, each path below `under`."""
    return [f"{path_of((under, *item['loc']) if under else item['loc']) or '(top level)'}: "
            f"{reason_of(item)}" for item in error.errors()]  # fmt: skip
