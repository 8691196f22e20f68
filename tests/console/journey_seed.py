"""A patient with a journey across two sources: an admission, a transfer and its cancel, a
discharge whose notification was never acknowledged and whose follow-up is overdue (one of its
deliveries dead-lettered), and a second patient who must never appear in the first's journey."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from engine.store import FollowUpRecord, Store
from tests.console.seed import T0, accepted, deliver_all

OTHER = "9449305552"
LOCAL = "local:mh-trust:RXX:MRN77"


async def seed_journey(store: Store) -> None:
    admit = accepted("a1", kind="admission", at=T0)
    transfer = accepted("t1", kind="transfer", source="acute", at=T0 + timedelta(hours=5))
    cancel = accepted("c1", kind="cancel_transfer", source="acute", at=T0 + timedelta(hours=6))
    assert cancel.accepted is not None
    cancel = replace(cancel, accepted=replace(cancel.accepted, corrects="ev-t1"))
    discharged = T0 + timedelta(days=2)
    discharge = accepted("d1", kind="discharge", at=discharged)
    assert discharge.accepted is not None
    clock = FollowUpRecord("mh-72h", "72h", discharged, discharged + timedelta(hours=72))
    discharge = replace(discharge, accepted=replace(discharge.accepted, follow_up=clock))
    other = accepted("o1", f"nhs:{OTHER}", kind="admission", at=T0)
    local = accepted("l1", LOCAL, kind="admission", at=T0)
    await store.record_intake([admit, transfer, cancel, discharge, other, local])
    await deliver_all(store, dead=frozenset({"team"}))
