"""Durations in the config: seconds (``30``) or a number with a unit (``250ms``, ``5s``,
``15m``, ``72h``, ``2d``)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: object) -> object:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m or 72h")
    if isinstance(value, int | float):
        return timedelta(seconds=float(value))
    if isinstance(value, str) and (m := _DURATION.match(value)):
        return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    raise ValueError("expected a duration such as 30s, 5m or 72h")


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
