"""``routes:``: which care events go to which destinations."""

from __future__ import annotations

from pydantic import Field

from engine.config.base import Name, Strict
from mappings.model import CareSetting, EventKind


class RouteMatch(Strict):
    """Every given criterion must match; an omitted one matches anything."""

    kinds: list[EventKind] | None = None
    care_settings: list[CareSetting] | None = None
    sources: list[Name] | None = None


class Route(Strict):
    name: Name
    match: RouteMatch = RouteMatch()
    to: list[Name] = Field(min_length=1)
