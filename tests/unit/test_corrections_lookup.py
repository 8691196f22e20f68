"""The shell of the correction rules, against a recording fake of the history's lookups: it
asks exactly what the rules need, each question once per batch, and logs identifiers only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import structlog

from engine.corrections import Corrections
from engine.corrections.lookup import log_decisions
from engine.preparation import Prepared
from engine.store import History, Original
from tests.adt_factory import CANARY_FAMILY, CANARY_GIVEN
from tests.unit.test_corrections_rules import HOLDS, PK, STAY, eid, msg


@dataclass
class RecordingHistory:
    """The history's five lookups, answering from `originals` etc.; every call recorded."""

    originals: dict[tuple[str, str | None, str], Original] = field(default_factory=dict)
    standing: dict[tuple[str, str | None], str] = field(default_factory=dict)
    unmatched: set[str] = field(default_factory=set)
    discharged: set[str] = field(default_factory=set)
    calls: list[tuple[Any, ...]] = field(default_factory=list)

    def find_original(self, patient_key: str, stay_id: str | None, kind: str) -> Original | None:
        self.calls.append(("find_original", patient_key, stay_id, kind))
        return self.originals.get((patient_key, stay_id, kind))

    def patients_with_unmatched_cancels(self, patient_keys: Sequence[str]) -> set[str]:
        self.calls.append(("patients_with_unmatched_cancels", tuple(patient_keys)))
        return self.unmatched & set(patient_keys)

    def patients_with_discharges(self, patient_keys: Sequence[str]) -> set[str]:
        self.calls.append(("patients_with_discharges", tuple(patient_keys)))
        return self.discharged & set(patient_keys)

    def standing_discharge(self, patient_key: str, stay_id: str | None) -> str | None:
        self.calls.append(("standing_discharge", patient_key, stay_id))
        return self.standing.get((patient_key, stay_id))

    def find_early_cancel(self, patient_key: str, stay_id: str | None, cancel_kind: str,
                          occurred_at: datetime | None) -> str | None:  # fmt: skip
        self.calls.append(("find_early_cancel", patient_key, stay_id, cancel_kind))
        return None


def link(history: RecordingHistory, batch: list[Prepared]) -> list[Prepared]:
    """What intake does: link inside the write, then log the decisions."""
    linked, decided = Corrections(HOLDS).linked_in(batch, cast(History, history))
    log_decisions(decided)
    return linked


def test_the_shell_asks_each_question_once_and_applies_the_decisions() -> None:
    history = RecordingHistory(
        originals={(PK, STAY, "discharge"): Original(eid("DIS"), ("gp",))},
        standing={(PK, STAY): eid("DIS")},
        unmatched={PK},
        discharged={PK},
    )
    batch = [msg("A13", "CAN1", 90), msg("A13", "CAN2", 95), msg("A03", "DIS2", 120)]
    linked = link(history, batch)
    assert history.calls == [
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


def test_a_batch_without_corrections_asks_only_the_batch_questions() -> None:
    history = RecordingHistory()
    linked = link(history, [msg("A01", "ADM", 0)])
    assert history.calls == [
        ("patients_with_unmatched_cancels", (PK,)),
        ("patients_with_discharges", ()),
    ]
    assert linked[0].record == msg("A01", "ADM", 0).record


def test_what_was_decided_is_logged_with_identifiers_only() -> None:
    history = RecordingHistory(discharged={PK}, standing={(PK, STAY): eid("DIS")})
    with structlog.testing.capture_logs() as logs:
        link(history, [msg("A13", "CAN", 90), msg("A12", "CANT", 91),
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
