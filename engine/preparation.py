"""Intake's pure step: one inbound payload to a record for the store.

    size check ─► detect format ─► map (mappings/) ─► route ─► IntakeRecord

Never raises for bad content: a message that cannot be mapped becomes a rejected record with a
precise reason (and the HL7 table 0357 code and location the sender's standard uses).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from engine.config import Config
from engine.routing import care_setting, destinations_for, patient_key
from engine.store import AcceptedEvent, FollowUpRecord, IntakeRecord
from mappings.clinical.follow_up import FollowUpRule, follow_up_for
from mappings.clinical.transitions import with_transitions
from mappings.errors import MappingError
from mappings.inbound import map_message
from mappings.model import CareEvent
from mappings.privacy import withhold_hidden_location
from mappings.profile import FeedProfile


@dataclass(frozen=True, slots=True)
class Prepared:
    record: IntakeRecord
    event: CareEvent | None


MAX_MESSAGE_KEY = 200


def bounded_key(key: str) -> str:
    """Keys built from sender data are bounded: a long one is replaced by its digest."""
    if len(key) <= 200:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def prepare(
    source: str,
    payload: bytes,
    *,
    config: Config,
    profiles: Mapping[str, FeedProfile],
    received_at: datetime,
    transport_id: str | None = None,
    follow_up_rules: Sequence[FollowUpRule] = (),
) -> Prepared:
    """Parse, map and route one message. Never raises for bad content: that is a rejection."""
    profile = profiles[source]

    record = functools.partial(IntakeRecord, source=source, payload=payload,
                               received_at=received_at, transport_id=transport_id)  # fmt: skip

    limit = config.intake.max_message_bytes
    if len(payload) > limit:
        reason = f"message is {len(payload)} bytes, over the {limit}-byte limit"
        return Prepared(record(error_code="207", reason=reason), None)
    try:
        mapped = with_transitions(map_message(payload, profile), config.transitions)
        event = withhold_hidden_location(mapped.model_copy(update={"received_at": received_at}))
    except MappingError as exc:
        location = (exc.location or "")[:64] or None
        rejected = record(reason=exc.reason, error_code=exc.code, error_location=location)
        return Prepared(rejected, None)
    message_format = event.source.format.value
    if len(event.source.message_id) > MAX_MESSAGE_KEY:
        rejected = record(
            format=message_format, error_code="102", error_location="MSH-10",
            reason=f"message id longer than {MAX_MESSAGE_KEY} characters",
        )  # fmt: skip
        return Prepared(rejected, None)
    accepted = _accepted(event, config, follow_up_rules)
    return Prepared(record(format=message_format, message_key=event.source.message_id,
                           accepted=accepted), event)  # fmt: skip


def _accepted(event: CareEvent, config: Config, rules: Sequence[FollowUpRule]) -> AcceptedEvent:
    """The event as the store keeps it, with the destinations its routes name."""
    holds = {d.name: d.hold_on_dead_letter for d in config.destinations}
    return AcceptedEvent(
        event_id=event.event_id,
        kind=event.kind.value,
        care_setting=care_setting(event).value,
        patient_key=bounded_key(patient_key(event)),
        stay_id=bounded_key(event.stay.id) if event.stay and event.stay.id else None,
        follow_up=_follow_up(event, rules),
        occurred_at=event.occurred_at.utc if event.occurred_at else None,
        body=event.model_dump_json(exclude_none=True),
        destinations=tuple((d, holds[d]) for d in destinations_for(event, config.routes)),
    )


def _follow_up(event: CareEvent, rules: Sequence[FollowUpRule]) -> FollowUpRecord | None:
    found = follow_up_for(event, rules) if rules else None
    if found is None:
        return None
    return FollowUpRecord(found.rule, found.standard, found.discharged_at, found.due_at)
