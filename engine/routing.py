"""Which destinations an event goes to, and which patient queue it waits in. Pure functions."""

from __future__ import annotations

from collections.abc import Sequence

from engine.config import Route
from mappings.model import CareEvent, CareSetting, Identifier, IdentifierKind


def patient_key(event: CareEvent) -> str:
    """The key that orders a patient's deliveries.

    The NHS number when the patient has one valid NHS number; else the feed with the sender's
    local identifier (assigning authority included, since MRNs of two trusts can coincide);
    else the message itself, so an unidentifiable patient never queues behind anyone.
    """
    patient = event.patient
    if (nhs := patient.nhs_number) is not None:
        return f"nhs:{nhs}"
    local = patient.local_identifier()
    if local is not None and (key := identifier_key(event.source.feed, local)) is not None:
        return key
    return f"message:{event.source.feed}:{event.source.message_id}"


def identifier_key(feed: str, identifier: Identifier) -> str | None:
    """The patient key one identifier stands for (see `patient_key`)."""
    if identifier.kind is IdentifierKind.NHS_NUMBER:
        return f"nhs:{identifier.value}"
    if identifier.kind is IdentifierKind.LOCAL:
        return f"local:{feed}:{identifier.system or ''}:{identifier.value}"
    return None


def retired_keys(event: CareEvent) -> list[str]:
    """For a merge, the keys of the retired identities that must now follow the survivor."""
    if event.merge is None:
        return []
    survivor = patient_key(event)
    keys = (identifier_key(event.source.feed, i) for i in event.merge.retired)
    return sorted({k for k in keys if k is not None and k != survivor})


def care_setting(event: CareEvent) -> CareSetting:
    return event.stay.care_setting if event.stay is not None else CareSetting.UNKNOWN


def destinations_for(event: CareEvent, routes: Sequence[Route]) -> list[str]:
    """Every destination of every matching route, each once, in the order the routes name them."""
    chosen: list[str] = []
    setting = care_setting(event)
    for route in routes:
        match = route.match
        if match.kinds is not None and event.kind not in match.kinds:
            continue
        if match.care_settings is not None and setting not in match.care_settings:
            continue
        if match.sources is not None and event.source.feed not in match.sources:
            continue
        chosen += [name for name in route.to if name not in chosen]
    return chosen
