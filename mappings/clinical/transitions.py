"""Transitions of care a discharge carries, as structured flags on the care event (issue 13
point 6; domain brief 7.13, 7.14 and 9). Pure: no I/O, no logging.

**To adult services** (NICE NG43, transition from children's to adults' services), when the
age at discharge (the Europe/London day of discharge, as the follow-up rules take it) shows a
young person at the point of moving to adult services:

- aged `adult_services_from_age` (17 by default) or over but under 18: adult services take
  over within the year, so the adult team should be told now (17 is the age from which NHS
  mental health transition is planned in earnest, and the last year a CAMHS spell can run);
- 18 or over at discharge but under 18 at admission: the patient turned 18 during the stay
  (domain brief 7.14), so a CAMHS admission ends in adult services;
- 18 or over on a CAMHS spell (treatment function in `camhs_treatment_functions`, 711 and 712
  by default): a CAMHS spell discharged to adult services.

The receiving team is not in ADT messages, so a CAMHS spell "discharged to an adult team" is
recognised by age, as above, and by the notification recipient: one configured with
``adult_services: true`` is an adult team, and a CAMHS spell notified to it carries the flag in
that notification (`to_adult_team`). An unknown age raises no flag of its own (the follow-up
rules still give such a discharge a clock).

**Out of area** (domain brief 7.13): the discharging provider's area is a table in the
config (`provider_areas`: provider ODS code to postcode districts, GP practice codes and ICB
codes, with `practice_icbs` saying which ICB a practice belongs to). A discharge is out of
area when the patient's GP practice, or the postcode district of their home address, is
known, the provider's table lists that kind of place, and the patient's is not in it. A
provider without a table raises no flag; a provider with one and a patient with neither a GP
practice nor a home postcode gets a warning, so an operator sees that it could not be told.
Reasons never hold the address, and say nothing specific when the location is hidden (ZU8).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Final

from pydantic import AfterValidator, BeforeValidator, Field, StrictInt

from mappings.clinical.follow_up.evaluation import discharge_instant
from mappings.clinical.follow_up.rules import LONDON, age_on
from mappings.model import AddressUse, CareEvent, EventKind, Transition, TransitionKind
from mappings.settings import Strict

_ODS: Final = re.compile(r"[A-Z0-9]{3,8}")
_DISTRICT: Final = re.compile(r"[A-Z]{1,2}[0-9][A-Z0-9]?")


def _upper(value: object) -> object:
    return value.strip().upper() if isinstance(value, str) else value


def _ods(code: str) -> str:
    if not _ODS.fullmatch(code):
        raise ValueError(f"{code!r} is not an ODS code (3 to 8 letters and digits)")
    return code


def _district(code: str) -> str:
    if not _DISTRICT.fullmatch(code):
        raise ValueError(f"{code!r} is not a postcode district (the outward code, e.g. LS1, SW1A)")
    return code


OdsCode = Annotated[str, BeforeValidator(_upper), AfterValidator(_ods)]
District = Annotated[str, BeforeValidator(_upper), AfterValidator(_district)]


class ProviderArea(Strict):
    """One provider's area: any place listed is in it."""

    postcode_districts: frozenset[District] = frozenset()
    gp_practices: frozenset[OdsCode] = frozenset()
    icbs: frozenset[OdsCode] = frozenset()
    """ICB (or sub-ICB) codes: a GP practice in `practice_icbs` under one of these is in area."""


class TransitionSettings(Strict):
    """``transitions:`` in the config: when a discharge is flagged as a transition of care."""

    adult_services_from_age: Annotated[StrictInt, Field(ge=14, le=17)] = 17
    camhs_treatment_functions: frozenset[str] = frozenset({"711", "712"})
    provider_areas: Mapping[OdsCode, ProviderArea] = Field(default_factory=dict)
    practice_icbs: Mapping[OdsCode, OdsCode] = Field(default_factory=dict)
    """GP practice ODS code -> its ICB code, for areas given as ICBs."""


DEFAULT_TRANSITIONS: Final = TransitionSettings()


def with_transitions(event: CareEvent, settings: TransitionSettings) -> CareEvent:
    """The event with its transition flags (and a warning when out of area cannot be told).

    Only a discharge is flagged. Call before location hiding withholds the address and GP."""
    if event.kind is not EventKind.DISCHARGE:
        return event
    flags: list[Transition] = []
    warnings: list[str] = []
    if (adult := _to_adult_services(event, settings)) is not None:
        flags.append(Transition(kind=TransitionKind.TO_ADULT_SERVICES, reason=adult))
    away = _out_of_area(event, settings)
    if away is not None and away.startswith("warning: "):
        warnings.append(away.removeprefix("warning: "))
    elif away is not None:
        flags.append(Transition(kind=TransitionKind.OUT_OF_AREA, reason=away))
    if not flags and not warnings:
        return event
    return event.model_copy(
        update={"transitions": tuple(flags), "warnings": (*event.warnings, *warnings)}
    )


def to_adult_team(
    event: CareEvent, team: str, camhs_functions: frozenset[str] | None = None
) -> CareEvent:
    """The event as notified to `team`, an adult team (``adult_services: true`` on the
    recipient): a CAMHS spell discharged to it is a move to adult services whatever the age, so
    the flag is added (for this notification only; the stored event is unchanged)."""
    functions = (
        DEFAULT_TRANSITIONS.camhs_treatment_functions
        if camhs_functions is None
        else (camhs_functions)
    )
    stay = event.stay
    function = stay.specialty.code if stay and stay.specialty else None
    already = any(t.kind is TransitionKind.TO_ADULT_SERVICES for t in event.transitions)
    if event.kind is not EventKind.DISCHARGE or function not in functions or already:
        return event
    flag = Transition(
        kind=TransitionKind.TO_ADULT_SERVICES,
        reason=f"a CAMHS spell (treatment function {function}) discharged to an adult team "
        f"({team})",
    )
    return event.model_copy(update={"transitions": (flag, *event.transitions)})


def _to_adult_services(event: CareEvent, settings: TransitionSettings) -> str | None:
    born = event.patient.birth_date
    left = discharge_instant(event)
    if born is None or left is None:
        return None
    age = age_on(born, left[0].astimezone(LONDON).date())
    stay = event.stay
    function = stay.specialty.code if stay and stay.specialty else None
    camhs = function is not None and function in settings.camhs_treatment_functions
    spell = f"CAMHS spell (treatment function {function})" if camhs else "discharge"
    if settings.adult_services_from_age <= age < 18:
        return f"aged {age} at discharge: adult services from 18 ({spell}); plan the transition"
    if age < 18:
        return None
    admitted = stay.admitted_at if stay else None
    if admitted is not None and age_on(born, admitted.utc.astimezone(LONDON).date()) < 18:
        return f"turned 18 during the stay ({spell}): adult services now responsible"
    if camhs:
        return f"aged {age} at the end of a {spell}: adult services now responsible"
    return None


def _out_of_area(event: CareEvent, settings: TransitionSettings) -> str | None:
    """The reason the discharge is out of area, ``warning: ...`` when it cannot be told, or
    None (in area, or no table for the provider)."""
    provider = (event.stay.provider_ods if event.stay else None) or event.source.facility_ods
    area = settings.provider_areas.get((provider or "").upper())
    if provider is None or area is None:
        return None
    patient = event.patient
    practice = patient.gp_practice_ods.strip().upper() if patient.gp_practice_ods else None
    home = next((a for a in patient.addresses if a.use is AddressUse.HOME and a.postcode), None)
    district = _outward(home.postcode) if home and home.postcode else None
    outside: list[str] = []
    if practice and (area.gp_practices or area.icbs):
        icb = settings.practice_icbs.get(practice)
        if practice not in area.gp_practices and (icb is None or icb not in area.icbs):
            outside.append(f"GP practice {practice}")
    if district and area.postcode_districts and district not in area.postcode_districts:
        outside.append("home postcode district")
    if outside:
        where = " and ".join(outside)
        if patient.location_hidden:
            where = "registered GP or home (details withheld: location hidden)"
        return f"{where} outside provider {provider}'s area: tell the home team and GP"
    if practice is None and district is None:
        return (
            f"warning: transitions: neither a GP practice nor a home postcode to check against "
            f"provider {provider}'s area; out of area not known"
        )
    return None


def _outward(postcode: str) -> str | None:
    """The postcode district (outward code): ``LS1`` of ``LS1 4AP`` (or ``LS14AP``)."""
    text = "".join(postcode.split()).upper()
    if len(text) < 5 or len(text) > 7:
        return None
    outward = text[:-3]
    return outward if _DISTRICT.fullmatch(outward) else None
