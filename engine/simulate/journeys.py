"""Patient journeys drawn from pathways with a seed: who the patients are, and what happens to
each of them when. Pure and repeatable: the same pathways, seed and counts give the same events.

Every patient is invented: NHS numbers come from the 999 range reserved for testing (valid
modulus 11), names are synthetic.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from engine.simulate.pathways import Pathway, Step
from mappings.nhs_number import check_digit

_FAMILIES = ("SIMFAMILY", "SIMPSONTEST", "EXAMPLETON", "SYNTHETICA", "TESTWELL", "MOCKRIDGE")
_GIVENS = ("ALEX", "SAM", "JORDAN", "CASEY", "RILEY", "MORGAN", "JAMIE", "TAYLOR")


@dataclass(frozen=True, slots=True)
class SimPatient:
    nhs_number: str
    mrn: str
    family: str
    given: str
    birth_date: date
    sex: str
    """NHS codes: 1 male, 2 female."""
    postcode: str
    practice: str
    out_of_area: bool
    under_18: bool


@dataclass(slots=True)
class SimEvent:
    """One thing that happens to a patient, as its message will say it."""

    journey: int
    index: int
    """Its place in the journey (0 is the admission)."""
    at: datetime
    trigger: str
    pathway: Pathway
    patient: SimPatient
    stay: str
    site: str
    ward: str
    treatment_function: str
    prior_site: str | None = None
    prior_ward: str | None = None
    discharge_destination: str | None = None
    discharge_method: str | None = None
    discharged_at: datetime | None = None
    admitted_at: datetime | None = None
    cancels: int | None = None
    """For a cancel: the index of the event it cancels in the same journey."""
    retired_mrn: str | None = None
    """For a merge: the duplicate record's local number."""
    extras: dict[str, str] = field(default_factory=dict)


def nhs_numbers(count: int, offset: int) -> list[str]:
    """`count` distinct valid NHS numbers from the 999 test range, starting at `offset`."""
    found: list[str] = []
    n = offset
    while len(found) < count:
        nine = f"999{n % 1_000_000:06d}"
        if (digit := check_digit(nine)) is not None:
            found.append(f"{nine}{digit}")
        n += 1
    return found


def _patient(
    rng: random.Random, pathway: Pathway, nhs: str, number: int, at: datetime
) -> SimPatient:
    under_18 = rng.random() < pathway.under_18_share
    age = rng.randint(16, 17) if under_18 else rng.randint(*pathway.age)
    born = at.date() - timedelta(days=age * 365 + rng.randint(10, 350))
    away = bool(pathway.out_of_area_practices) and rng.random() < pathway.out_of_area_share
    practice = rng.choice(pathway.out_of_area_practices if away else pathway.practices)
    return SimPatient(
        nhs_number=nhs,
        mrn=f"{pathway.provider}{number:07d}",
        family=rng.choice(_FAMILIES),
        given=rng.choice(_GIVENS),
        birth_date=born,
        sex=rng.choice("12"),
        postcode=f"{'ZZ' if away else 'LS'}{rng.randint(1, 29)} {rng.randint(1, 9)}AB",
        practice=practice,
        out_of_area=away,
        under_18=under_18,
    )


def _weighted(rng: random.Random, weights: dict[str, float]) -> str:
    codes = list(weights)
    return rng.choices(codes, weights=[weights[c] for c in codes])[0]


def _gap(rng: random.Random, bounds: tuple[timedelta, timedelta]) -> timedelta:
    low, high = (b.total_seconds() for b in bounds)
    return timedelta(seconds=round(rng.uniform(low, high)))


def journeys(
    pathways: list[Pathway], *, patients: int, seed: int, start: datetime, window: timedelta
) -> list[list[SimEvent]]:
    """`patients` journeys, each starting at a time drawn within `window` after `start`."""
    rng = random.Random(seed)
    numbers = nhs_numbers(patients, offset=seed * 7919 % 900_000)
    chosen = rng.choices(pathways, weights=[p.weight for p in pathways], k=patients)
    out = []
    for j, (pathway, nhs) in enumerate(zip(chosen, numbers, strict=True)):
        begins = start.astimezone(UTC) + _gap(rng, (timedelta(0), window))
        patient = _patient(rng, pathway, nhs, seed * 100_000 + j, begins)
        out.append(_walk(rng, j, pathway, patient, begins))
    return out


def _walk(
    rng: random.Random, journey: int, pathway: Pathway, patient: SimPatient, at: datetime
) -> list[SimEvent]:
    stay = f"SIM{journey:06d}"
    events: list[SimEvent] = []
    here = SimEvent(journey, 0, at, "A01", pathway, patient, stay, rng.choice(pathway.sites),
                    rng.choice(pathway.wards), rng.choice(pathway.treatment_functions),
                    admitted_at=at)  # fmt: skip
    events.append(here)
    for step in pathway.steps[1:]:
        if rng.random() >= step.probability:
            continue
        here = _take(rng, step, events, _gap(rng, step.after))
    for i, event in enumerate(events):
        event.index = i
    return events


def _next(previous: SimEvent, trigger: str, at: datetime, **changes: object) -> SimEvent:
    event = SimEvent(previous.journey, 0, at, trigger, previous.pathway,
                     previous.patient, previous.stay, previous.site, previous.ward,
                     previous.treatment_function, admitted_at=previous.admitted_at)  # fmt: skip
    for name, value in changes.items():
        setattr(event, name, value)
    return event


def _take(rng: random.Random, step: Step, events: list[SimEvent], gap: timedelta) -> SimEvent:
    """Append the events of one step to the journey; return the last."""
    last = events[-1]
    at = last.at + gap
    found = [i for i, e in enumerate(events) if e.trigger == "A03"]
    discharge = events[found[-1]] if found else None
    standing = bool(found) and not any(e.trigger == "A13" for e in events[found[-1] :])
    if step.step in ("transfer", "leave", "update") and standing:
        return last  # after a standing discharge the stay is over: nothing more happens in it
    match step.step:
        case "transfer":
            site = last.site
            if rng.random() < step.cross_site and len(last.pathway.sites) > 1:
                site = rng.choice([s for s in last.pathway.sites if s != last.site])
            ward = rng.choice([w for w in last.pathway.wards if w != last.ward] or [last.ward])
            new = [_next(last, "A02", at, site=site, ward=ward, prior_site=last.site,
                         prior_ward=last.ward)]  # fmt: skip
        case "leave":
            out = _next(last, "A21", at)
            new = [out, _next(out, "A22", at + _gap(rng, step.duration))]
        case "update":
            new = [_next(last, "A08", at)]
        case "person_update":
            new = [_next(last, "A31", at)]
        case "discharge" | "change_discharge":
            if step.step == "change_discharge" and not standing:
                return last
            changed = discharge if step.step == "change_discharge" else None
            new = [_discharge(rng, step, last, at, changed)]
        case "cancel_discharge":
            if not standing or discharge is None:
                return last
            new = [_next(last, "A13", at, cancels=events.index(discharge),
                         discharged_at=discharge.discharged_at)]  # fmt: skip
        case "merge":
            new = [_next(last, "A40", at, retired_mrn=f"D{last.patient.mrn}")]
    events += new
    return new[-1]


def _discharge(
    rng: random.Random, step: Step, last: SimEvent, at: datetime, earlier: SimEvent | None
) -> SimEvent:
    if earlier is not None and earlier.discharged_at is not None:
        # a changed discharge: the same stay's discharge, its time corrected
        return _next(last, "A03", at, discharge_destination=earlier.discharge_destination,
                     discharge_method=earlier.discharge_method,
                     discharged_at=earlier.discharged_at - timedelta(minutes=30))  # fmt: skip
    destination = _weighted(rng, step.destination)
    method = "4" if destination == "79" else _weighted(rng, step.method)
    return _next(last, "A03", at, discharge_destination=destination, discharge_method=method,
                 discharged_at=at)  # fmt: skip
