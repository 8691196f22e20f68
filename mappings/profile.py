"""A feed's mapping profile: what differs between senders, as data rather than code."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from mappings.model import CareSetting

DEFAULT_TIMEZONE = "Europe/London"


@dataclass(frozen=True, slots=True)
class FeedProfile:
    """How to read one source's messages.

    The default profile follows the NHS ITK HL7v2 conventions (v2.4, ward in PV1-3.2 "room",
    ODS site in PV1-3.4) and reads offset-less timestamps as Europe/London wall-clock time.
    """

    feed: str
    care_setting: CareSetting = CareSetting.UNKNOWN
    timezone: str = DEFAULT_TIMEZONE


def event_id(feed: str, message_id: str) -> str:
    """The stable id of the event a feed's message becomes: a replay maps to the same id."""
    digest = hashlib.sha256(f"{feed}\x1f{message_id}".encode()).hexdigest()
    return f"ev-{digest[:32]}"
