"""The YAML test file of `carebridge test`: cases that each give one input message, the source it
arrives from, and what must come of it under the real config.

    tests:
      - name: a mental health discharge reaches the GP practice
        source: mh-trust
        input: {file: ../../tests/fixtures/hl7v2/mh_a03_discharge.hl7}   # or hl7v2: / fhir:
        received_at: 2026-02-02T10:35:00Z                              # optional
        expect:
          accepted: true                  # or rejected: "a phrase of the reason"
          event: {kind: discharge, patient.nhs_number: "9434765919"}
          destinations: [community-mh-team, gp-practice-inbox, events]
          follow_up: {standard: 72h, due_at: 2026-02-05T10:30:00Z}
          notification: {destination: discharge-notifications, recipient: gp,
                         text_contains: ["DISCHARGE from mental health"]}
          payloads:
            pas-mllp: {PV1-3.1: WARD9, MSH-9.2: A03}      # HL7v2 fields by position
            fhir-server:                                   # JSON by path
              entry[0].resource.resourceType: MessageHeader

(In YAML's flow style, ``{...}``, quote a key that holds brackets: ``{"entry[0].id": x}``.)

A path's expected value is a scalar (compared as text; instants compared as instants), `null`
for absent, or one of ``{contains: TEXT}``, ``{matches: REGEX}``, ``{present: true|false}``.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from engine.yaml_files import FileProblems, Strict, read_model

SpecError = FileProblems
"""A test file cannot be used; `problems` are ``file: path: reason`` lines."""


class Input(Strict):
    """Exactly one of: a file (relative to the test file), inline HL7v2 (one segment a line),
    or inline FHIR (a JSON document, as YAML or as text)."""

    file: Path | None = None
    hl7v2: str | None = None
    fhir: dict[str, Any] | str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Input:
        given = [n for n in ("file", "hl7v2", "fhir") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of file, hl7v2, fhir")
        return self

    def payload(self, base: Path) -> bytes:
        """The message bytes as a sender would send them."""
        if self.file is not None:
            return (base / self.file).read_bytes()
        if self.hl7v2 is not None:
            segments = [line.strip("\r") for line in self.hl7v2.strip().splitlines()]
            return "\r".join(s for s in segments if s).encode()
        if isinstance(self.fhir, str):
            return self.fhir.encode()
        return json.dumps(self.fhir).encode()


class FollowUpExpect(Strict):
    none: bool = False
    """True: the event must start no follow-up clock."""
    standard: str | None = None
    rule: str | None = None
    due_at: datetime | None = None


class NotificationExpect(Strict):
    destination: str
    recipient: str | None = None
    """The recipient's name, or `null` with `sent: false`."""
    sent: bool = True
    text_contains: list[str] = Field(default_factory=list)


class Expect(Strict):
    accepted: bool | None = None
    rejected: str | None = None
    """A phrase the rejection reason must contain ("" for any rejection)."""
    event: dict[str, Any] = Field(default_factory=dict)
    destinations: list[str] | None = None
    follow_up: FollowUpExpect | None = None
    notification: NotificationExpect | None = None
    payloads: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Expect:
        if self.rejected is not None and self.accepted:
            raise ValueError("a case cannot expect both accepted and rejected")
        if self.rejected is not None and (self.event or self.destinations or self.payloads):
            raise ValueError("a rejected message has no event, destinations or payloads")
        return self

    @property
    def wants_rejection(self) -> bool:
        return self.rejected is not None or self.accepted is False


class Case(Strict):
    name: str = Field(min_length=1)
    source: str
    input: Input
    received_at: datetime | None = None
    expect: Expect


class RouteTestFile(Strict):
    config: Path | None = None
    """The config these cases are written for, relative to the test file (`-c` overrides)."""
    tests: list[Case] = Field(min_length=1)


def load_test_file(path: Path) -> RouteTestFile:
    """Read and validate one test file; SpecError with ``file: path: reason`` lines if broken."""
    return read_model(path, RouteTestFile)
