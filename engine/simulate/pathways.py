"""Pathway files: what a patient's journey through one setting may look like, in YAML.

    name: mh-inpatient
    setting: mental_health        # care setting of the source (for the ground truth)
    source: mh-trust              # the config's source this provider's feed arrives as
    provider: RXT                 # ODS code of the provider (MSH-4, PV1-3.1)
    sites: [RXT01]                # ODS site codes (PV1-3.4); a transfer may change site
    wards: [WARD1, WARD2, PICU1]
    treatment_functions: ["710"]
    practices: [Y99901, Y99902]   # GP practices of this provider's area
    out_of_area_practices: [Y88801]
    out_of_area_share: 0.1        # share of patients registered outside the area
    under_18_share: 0.05          # share of patients aged 16-17 at admission
    age: [18, 80]
    weight: 3                     # how often this pathway is drawn, relative to the others
    steps:                        # in order; each happens with its probability
      - {step: admit}
      - {step: transfer, probability: 0.4, after: [2h, 3d], cross_site: 0.2}
      - {step: leave, probability: 0.5, after: [1d, 5d], duration: [4h, 2d]}
      - {step: update, probability: 0.3, after: [1h, 2d]}
      - step: discharge
        after: [2d, 20d]
        destination: {"19": 70, "54": 10, "53": 10, "29": 8, "79": 2}
        method: {"1": 95, "2": 5}
      - {step: cancel_discharge, probability: 0.05, after: [10m, 2h]}

Steps: `admit` (A01), `transfer` (A02), `leave` (A21 then A22), `update` (A08),
`person_update` (A31), `discharge` (A03; destination 79 is a death, with PID-29),
`cancel_discharge` (A13 of the discharge), `change_discharge` (a second A03 of the same stay, a
correction of its time), `merge` (A40: a duplicate local record merged into the patient).
"""

from __future__ import annotations

from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from engine.config.base import Duration
from engine.yaml_files import FileProblems, Strict, read_model

StepName = Literal[
    "admit",
    "transfer",
    "leave",
    "update",
    "person_update",
    "discharge",
    "cancel_discharge",
    "change_discharge",
    "merge",
]


PathwayError = FileProblems
"""A pathway file cannot be used; `problems` are ``file: path: reason`` lines."""


class Step(Strict):
    step: StepName
    probability: float = Field(default=1.0, ge=0.0, le=1.0)
    after: tuple[Duration, Duration] = (timedelta(hours=1), timedelta(days=1))
    """The time since the previous step, drawn uniformly between the two."""
    duration: tuple[Duration, Duration] = (timedelta(hours=4), timedelta(days=2))
    """For `leave`: how long until the return."""
    cross_site: float = Field(default=0.0, ge=0.0, le=1.0)
    """For `transfer`: the chance the move is to another site (notified to clinicians)."""
    destination: dict[str, float] = Field(default_factory=lambda: {"19": 1.0})
    """For `discharge`: NHS discharge destination codes and their weights."""
    method: dict[str, float] = Field(default_factory=lambda: {"1": 1.0})
    """For `discharge`: NHS discharge method codes and their weights."""

    @field_validator("after", "duration")
    @classmethod
    def _ordered(cls, value: tuple[timedelta, timedelta]) -> tuple[timedelta, timedelta]:
        if value[0] > value[1]:
            raise ValueError("the first duration must not exceed the second")
        return value

    @field_validator("destination", "method")
    @classmethod
    def _weights(cls, value: dict[str, float]) -> dict[str, float]:
        if not value or any(w < 0 for w in value.values()) or sum(value.values()) <= 0:
            raise ValueError("give codes with non-negative weights that add up to more than 0")
        return value


class Pathway(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    description: str | None = None
    setting: Literal["mental_health", "acute", "community"]
    source: str
    provider: str = Field(pattern=r"^[A-Z0-9]{3,5}$")
    sites: list[str] = Field(min_length=1)
    wards: list[str] = Field(min_length=1)
    treatment_functions: list[str] = Field(min_length=1)
    practices: list[str] = Field(min_length=1)
    out_of_area_practices: list[str] = Field(default_factory=list)
    out_of_area_share: float = Field(default=0.0, ge=0.0, le=1.0)
    under_18_share: float = Field(default=0.0, ge=0.0, le=1.0)
    age: tuple[int, int] = (18, 80)
    weight: float = Field(default=1.0, gt=0)
    steps: list[Step] = Field(min_length=1)

    @field_validator("steps")
    @classmethod
    def _starts_with_admission(cls, steps: list[Step]) -> list[Step]:
        if steps[0].step != "admit":
            raise ValueError("a pathway's first step is admit")
        return steps


def load_pathway(path: Path) -> Pathway:
    return read_model(path, Pathway)


def packaged_pathways() -> list[Pathway]:
    """The pathways that ship with Carebridge (`engine/simulate/pathways/*.yaml`)."""
    folder = resources.files("engine.simulate").joinpath("pathways")
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".yaml"))
    found = []
    for name in names:
        with resources.as_file(folder.joinpath(name)) as path:
            found.append(load_pathway(path))
    return found


def load_pathways(paths: list[Path]) -> list[Pathway]:
    """Every pathway file named, and every *.yaml in a named folder; the packaged ones if none."""
    if not paths:
        return packaged_pathways()
    files: list[Path] = []
    for path in paths:
        files += sorted(path.glob("*.yaml")) if path.is_dir() else [path]
    problems: list[str] = []
    loaded: list[Pathway] = []
    for file in files:
        try:
            loaded.append(load_pathway(file))
        except PathwayError as exc:
            problems += exc.problems
    if problems:
        raise PathwayError(problems)
    return loaded
