"""The async shell of the correction rules, against a recording fake of the store's lookups:
it asks exactly what the rules need, each question once per batch, and logs identifiers only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import structlog

from engine.corrections import Corrections
from engine.store import Original, Store
from tests.adt_factory import CANARY_FAMILY, CANARY_GIVEN
from tests.unit.test_corrections_rules import HOLDS, PK, STAY, eid, msg


@dataclass
class RecordingStore:
    """The store's five lookups, answering from `originals` etc.; every call recorded."""

    originals: dict[tuple[str, str | None, str], Original] = field(default_factory=dict)
    standing: dict[tuple[str, str | None], str] = field(default_factory=dict)
    unmatched: set[str] = field(default_factory=set)
    discharged: set[str] = field(default_factory=set)
    calls: list[tuple[Any, ...]] = field(default_factory=list)

    async def find_original(
        self, patient_key: str, stay_id: str | None, kind: str
    ) -> Original | None:
        self.calls.append(("find_original", patient_key, stay_id, kind))
        return self.originals.get((patient_key, stay_id, kind))

    async def patients_with_unmatched_cancels(self, patient_keys: Sequence[str]) -> set[str]:
        self.calls.append(("patients_with_unmatched_cancels", tuple(patient_keys)))
        return self.unmatched & set(patient_keys)

    async def patients_with_discharges(self, patient_keys: Sequence[str]) -> set[str]:
        self.calls.append(("patients_with_discharges", tuple(patient_keys)))
        return self.discharged & set(patient_keys)

    async def standing_discharge(self, patient_key: str, stay_id: str | None) -> str | None:
        self.calls.append(("standing_discharge", patient_key, stay_id))
        return self.standing.get((patient_key, stay_id))

    async def find_early_cancel(self, patient_key: str, stay_id: str | None, cancel_kind: str,
                                occurred_at: datetime | None) -> str | None:  # fmt: skip
        self.calls.append(("find_early_cancel", patient_key, stay_id, cancel_kind))
        return None


def corrections(store: RecordingStore) -> Corrections:
    return Corrections(cast(Store, store), HOLDS)


async def test_the_shell_asks_each_question_once_and_applies_the_decisions() -> None:
    store = RecordingStore(
        originals={(PK, STAY, "discharge"): Original(eid("DIS"), ("gp",))},
        standing={(PK, STAY): eid("DIS")},
        unmatched={PK},
        discharged={PK},
    )
    batch = [msg("A13", "CAN1", 90), msg("A13", "CAN2", 95), msg("A03", "DIS2", 120)]
    linked = await corrections(store).link(batch)
    assert store.calls == [
        ("patients_with_unmatched_cancels", (PK,)),  # the discharge may have come after a cancel
        ("patients_with_discharges", (PK,)),
        ("find_original", PK, STAY, "discharge"),  # once for both cancels
        ("find_early_cancel", PK, STAY, "cancel_discharge"),
        ("standing_discharge", PK, STAY),
    ]
    accepted = [item.record.accepted for item in linked]
    assert [a.corrects for a in accepted if a] == [eid("DIS"), eid("DIS"), None]
    assert [a.destinations for a in accepted if a][:2] == [(("gp", False),)] * 2
    # The stored discharge was cancelled in this batch: the newer one is a new discharge.
    assert accepted[2] is not None
    assert accepted[2].withdraws_follow_up_of is None


async def test_a_batch_without_corrections_asks_only_the_batch_questions() -> None:
    store = RecordingStore()
    linked = await corrections(store).link([msg("A01", "ADM", 0)])
    assert store.calls == [
        ("patients_with_unmatched_cancels", (PK,)),
        ("patients_with_discharges", ()),
    ]
    assert linked[0].record == msg("A01", "ADM", 0).record


async def test_what_was_decided_is_logged_with_identifiers_only() -> None:
    store = RecordingStore(discharged={PK}, standing={(PK, STAY): eid("DIS")})
    with structlog.testing.capture_logs() as logs:
        await corrections(store).link([msg("A13", "CAN", 90), msg("A12", "CANT", 91),
                                       msg("A02", "TRA", 60), msg("A03", "DIS2", 120)])  # fmt: skip
    events = [(e["event"], e["event_id"]) for e in logs]
    assert events == [
        ("intake.cancel_without_original", eid("CAN")),
        ("intake.cancel_without_original", eid("CANT")),
        ("intake.superseded_by_earlier_cancel", eid("TRA")),
        ("intake.changed_discharge", eid("DIS2")),
    ]
    assert logs[2]["cancel_event_id"] == eid("CANT")
    assert logs[3]["replaces"] == eid("DIS")
    text = repr(logs)
    assert CANARY_FAMILY not in text
    assert CANARY_GIVEN not in text
    assert PK.removeprefix("nhs:") not in text
