"""What every fuzz target shares: the profiles it maps with, the model round trip, and how a
target module becomes an atheris fuzzer.

A target's `TestOneInput(data)` returns normally when the product did what it documents for
that input (accepted it, or refused it with its documented error type) and raises otherwise:
any other exception, or `InvariantBroken` when an output is wrong. libFuzzer reports either as
a crash, and `-timeout` reports a hang.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mappings.model import CareEvent
    from mappings.profile import FeedProfile

PRODUCT = ["mappings", "engine", "adapters"]
"""The packages whose code atheris instruments (coverage is counted only there)."""


def instrumented(fuzzing: bool) -> contextlib.AbstractContextManager[Any]:
    """Around a target's product imports: atheris instruments them when the module runs as the
    fuzzer (``python -m tests.fuzz.targets.NAME``); under pytest nothing is instrumented.

    A fuzzer runs the plain Python of `mappings.hl7v2`, never its compiled build: atheris
    counts coverage in Python bytecode only (tests/unit/test_native.py checks that the two map
    every input alike)."""
    if not fuzzing:
        return contextlib.nullcontext()
    import atheris

    from mappings import native

    os.environ[native.ENV] = "0"
    if "mappings.hl7v2" in sys.modules:
        raise RuntimeError("mappings.hl7v2 imported before the fuzzer could choose its build")

    return atheris.instrument_imports(include=PRODUCT)  # type: ignore[no-any-return]


@cache
def profiles() -> tuple[FeedProfile, ...]:
    """The default (ITK) profile and one with every local option set."""
    from mappings.profile import FeedProfile

    return (
        FeedProfile(feed="fuzz-default"),
        FeedProfile.from_mapping(
            {
                "feed": "fuzz-local",
                "care_setting": "mental_health",
                "timezone": "Europe/London",
                "ward_component": 1,
                "code_tables": {"discharge_destination": {"HOME": "19", "PRISON": "38"}},
                "legal_status": [{"field": "ZU5-2", "context": "admission", "start": "ZU5-4"}],
                "risk_flags": [{"field": "OBX-5", "observation": "RISK"}],
                "pid_2": "local",
                "nhs_numbers": "test",
            }
        ),
    )


class InvariantBroken(AssertionError):
    """The product answered, but its answer breaks a promise the target checks."""


def check(condition: bool, what: str) -> None:
    """Raise `InvariantBroken` naming `what` when `condition` is false (never stripped by -O)."""
    if not condition:
        raise InvariantBroken(what)


def profile_for(data: bytes) -> FeedProfile:
    """A profile chosen by the input's length, so both are exercised without spending bytes."""
    choices = profiles()
    return choices[len(data) % len(choices)]


def check_event(event: CareEvent) -> None:
    """An accepted message's event validates as the model and survives its JSON round trip."""
    from mappings.model import CareEvent

    check(isinstance(event, CareEvent), "the mapping returned something else than a CareEvent")
    text = event.model_dump_json()
    again = CareEvent.model_validate_json(text)
    check(again == event, "the care event is not the same after a JSON round trip")
    check(CareEvent.model_validate(event.model_dump()) == event, "model_dump does not validate")


def run(test_one_input: Callable[[bytes], None]) -> None:
    """Fuzz `test_one_input` with libFuzzer's command line (``sys.argv``)."""
    import atheris

    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
