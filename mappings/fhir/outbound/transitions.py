"""Transition flags (`CareEvent.transitions`) in FHIR: a CodeableConcept each, Carebridge's
`TRANSITION_SYSTEM` code with the reason as text; on the Encounter as `TRANSITION_URL`
extensions, and as the notification Communication's ``reasonCode``."""

from __future__ import annotations

from typing import Any, Final

from mappings.fhir.vocabulary import TRANSITION_SYSTEM, TRANSITION_URL
from mappings.model import CareEvent, TransitionKind

_DISPLAY: Final = {
    TransitionKind.TO_ADULT_SERVICES: "Young person moving to adult services",
    TransitionKind.OUT_OF_AREA: "Out-of-area discharge",
}


def transition_concepts(event: CareEvent) -> list[dict[str, Any]]:
    return [
        {
            "coding": [
                {"system": TRANSITION_SYSTEM, "code": t.kind.value, "display": _DISPLAY[t.kind]}
            ],
            "text": t.reason,
        }
        for t in event.transitions
    ]


def transition_extensions(event: CareEvent) -> list[dict[str, Any]]:
    return [
        {"url": TRANSITION_URL, "valueCodeableConcept": concept}
        for concept in transition_concepts(event)
    ]
