"""Fuzz target: FHIR R4 JSON to a care event (`mappings.fhir.inbound.map_fhir`: the safe JSON
reader, the Bundle reader and the mapping), and `mappings.inbound.map_message` in front of it.

Crash: any exception but `MappingError` from `map_fhir` (`map_message` would hide it as a 207
"internal error"); an accepted message whose care event does not validate or does not survive
its JSON round trip; or `map_message` answering differently for a JSON object.
"""

from __future__ import annotations

from tests.fuzz.targets._support import check, check_event, instrumented, profile_for, run

with instrumented(__name__ == "__main__"):
    from mappings.errors import MappingError
    from mappings.fhir.inbound import map_fhir
    from mappings.inbound import detect_format, map_message
    from mappings.model import MessageFormat


def TestOneInput(data: bytes) -> None:
    profile = profile_for(data)
    try:
        event = map_fhir(data, profile)
    except MappingError as error:
        check(bool(error.reason), "a MappingError without a reason")
        try:
            map_message(data, profile)
        except MappingError:
            return
        check(detect_format(data) is MessageFormat.HL7V2, "refused by map_fhir, then accepted")
        return
    check_event(event)
    check(event.source.format is MessageFormat.FHIR, "a FHIR event says another format")
    check(event.source.feed == profile.feed, "the event names another feed")
    if detect_format(data) is MessageFormat.FHIR:
        check(map_message(data, profile) == event, "map_message maps it differently")


if __name__ == "__main__":
    run(TestOneInput)
