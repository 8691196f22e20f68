"""Fuzz target: HL7 v2 ADT to a care event (`mappings.hl7v2.inbound.map_hl7v2`), and the one
inbound entry point in front of it (`mappings.inbound.map_message`).

Crash: any exception but `MappingError` from `map_hl7v2` (`map_message` turns such a fault
into a 207 "internal error" rejection, which hides a mapping bug: the target calls the mapping
itself); an accepted message whose care event does not validate or does not survive its JSON
round trip; or `map_message` answering differently from `map_hl7v2` (it must raise only
`MappingError`, and accept exactly what the mapping accepts).
"""

from __future__ import annotations

from tests.fuzz.targets._support import check, check_event, instrumented, profile_for, run

with instrumented(__name__ == "__main__"):
    from mappings.errors import MappingError
    from mappings.hl7v2.inbound import map_hl7v2
    from mappings.inbound import detect_format, map_message
    from mappings.model import MessageFormat
    from mappings.profile import FeedProfile


def TestOneInput(data: bytes) -> None:
    profile = profile_for(data)
    try:
        event = map_hl7v2(data, profile)
    except MappingError as error:
        _same_refusal(data, error, profile)
        return
    check_event(event)
    check(event.source.format is MessageFormat.HL7V2, "an HL7 v2 event says another format")
    check(event.source.feed == profile.feed, "the event names another feed")
    check(map_message(data, profile) == event, "map_message maps it differently")


def _same_refusal(data: bytes, error: MappingError, profile: FeedProfile) -> None:
    check(bool(error.reason), "a MappingError without a reason")
    try:
        map_message(data, profile)
    except MappingError:
        return
    # Accepted by map_message: only right when it read the input as FHIR, not HL7 v2.
    check(detect_format(data) is MessageFormat.FHIR, "refused by map_hl7v2, then accepted")


if __name__ == "__main__":
    run(TestOneInput)
