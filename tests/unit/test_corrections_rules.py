"""The correction rules without a database: what a cancel, a late original, a changed
discharge and a merge decide, given the batch so far and what the store answers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.config import feed_profiles, follow_up_rules, parse_config
from engine.corrections.rules import (
    NEVER_RECEIVED,
    Decision,
    FindEarlyCancel,
    FindOriginal,
    Known,
    Lookup,
    Outcome,
    StandingDischarge,
    applied,
    decide,
    patients_to_ask,
)
from engine.preparation import Prepared, prepare
from engine.store import Original
from mappings.model import CareEvent
from mappings.profile import event_id
from tests.adt_factory import Patient, adt, patients

CONFIG = parse_config(
    """
sources: [{name: mh, care_setting: mental_health}]
destinations:
  - {name: team, type: webhook, url: "https://team.example/x", hold_on_dead_letter: true}
  - {name: gp, type: webhook, url: "https://gp.example/x"}
routes:
  - {name: team, match: {kinds: [admission, registration, transfer, discharge, cancel_admission,
                                 cancel_transfer, cancel_discharge, merge]}, to: [team]}
  - {name: gp, match: {kinds: [discharge]}, to: [gp]}
""",
    env={},
)
HOLDS = {"team": True, "gp": False}
T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
[P] = patients(1)
PK = f"nhs:{P.nhs_number}"
STAY = f"V{P.mrn}"


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def msg(trigger: str, control_id: str, minutes: int, patient: Patient = P) -> Prepared:
    return prepare("mh", adt(trigger, patient, control_id, at(minutes)), config=CONFIG,
                   profiles=feed_profiles(CONFIG), received_at=at(minutes + 1),
                   follow_up_rules=follow_up_rules(CONFIG))  # fmt: skip


def eid(control_id: str) -> str:
    return event_id("mh", control_id)


@dataclass
class FakeStore:
    """What the store holds, as the rules may ask it; records the questions asked."""

    originals: dict[FindOriginal, Original] = field(default_factory=dict)
    early_cancels: dict[FindEarlyCancel, str] = field(default_factory=dict)
    standing: dict[StandingDischarge, str] = field(default_factory=dict)
    unmatched_cancels: frozenset[str] = frozenset()
    discharges: frozenset[str] = frozenset()
    asked: list[Lookup] = field(default_factory=list)

    def answer(self, known: Known, question: Lookup) -> Known:
        self.asked.append(question)
        answers: dict[Any, Original | str] = {**self.originals, **self.early_cancels,
                                              **self.standing}  # fmt: skip
        return known.answered(question, answers.get(question))


def link(
    batch: Sequence[Prepared], store: FakeStore | None = None
) -> list[tuple[Decision, Prepared]]:
    """Decide a batch as intake does: each item after the earlier ones, asking the store."""
    store = store or FakeStore()
    cancellable, discharged = patients_to_ask(batch)
    known = Known(unmatched_cancels=store.unmatched_cancels & set(cancellable),
                  discharges=store.discharges & set(discharged))  # fmt: skip
    out: list[tuple[Decision, Prepared]] = []
    for item in batch:
        decided = decide(item, [p for _, p in out], known, HOLDS)
        while not isinstance(decided, Decision):
            known = store.answer(known, decided)
            decided = decide(item, [p for _, p in out], known, HOLDS)
        out.append((decided, applied(item, decided)))
    return out


def event_of(item: Prepared) -> CareEvent:
    assert item.event is not None
    assert item.record.accepted is not None
    assert CareEvent.model_validate_json(item.record.accepted.body) == item.event
    return item.event


# ---- cancels ------------------------------------------------------------------------------


def test_a_cancel_with_its_original_in_the_batch_goes_where_the_original_goes() -> None:
    store = FakeStore()
    [_, (decision, cancel)] = link([msg("A03", "DIS", 60), msg("A13", "CAN", 90)], store)
    assert decision.outcome is Outcome.CANCEL_LINKED
    assert decision.withdraws_follow_up_of == eid("DIS")
    accepted = cancel.record.accepted
    assert accepted is not None
    assert accepted.destinations == (("team", True), ("gp", False))
    assert accepted.corrects == accepted.withdraws_follow_up_of == eid("DIS")
    assert accepted.links_cancel is None
    assert event_of(cancel).corrects_event_id == eid("DIS")
    assert store.asked == []  # the batch answered it


def test_a_cancel_of_a_stored_original_goes_only_where_it_went_and_is_still_configured() -> None:
    question = FindOriginal(PK, STAY, "discharge")
    store = FakeStore(originals={question: Original(eid("DIS"), ("gp", "retired-destination"))})
    [(decision, cancel)] = link([msg("A13", "CAN", 90)], store)
    assert store.asked == [question]
    assert decision.outcome is Outcome.CANCEL_LINKED
    assert decision.destinations == (("gp", False),)
    assert decision.corrects == decision.corrects_event_id == eid("DIS")
    assert cancel.record.accepted is not None
    assert cancel.record.accepted.destinations == (("gp", False),)


def test_a_cancel_of_an_event_never_received_goes_nowhere_with_a_note() -> None:
    [(decision, cancel)] = link([msg("A13", "CAN", 90)])
    assert decision.outcome is Outcome.CANCEL_WITHOUT_ORIGINAL
    accepted = cancel.record.accepted
    assert accepted is not None
    assert accepted.destinations == ()
    assert accepted.corrects is None
    assert decision.withdraws_follow_up_of is None
    assert NEVER_RECEIVED in event_of(cancel).warnings
    assert event_of(cancel).corrects_event_id is None


def test_a_cancel_looks_only_at_the_same_stay() -> None:
    other_stay = Patient(P.nhs_number, "OTHER", P.family, P.given)
    store = FakeStore()
    [_, (decision, _)] = link([msg("A03", "DIS", 60, other_stay), msg("A13", "CAN", 90)], store)
    assert decision.outcome is Outcome.CANCEL_WITHOUT_ORIGINAL
    assert store.asked == [FindOriginal(PK, STAY, "discharge")]


def test_a_cancel_corrects_the_newest_original_in_the_batch() -> None:
    batch = [msg("A03", "DIS1", 60), msg("A03", "DIS2", 70), msg("A13", "CAN", 90)]
    [*_, (decision, _)] = link(batch)
    assert decision.corrects == eid("DIS2")


def test_a_cancelled_admission_withdraws_no_follow_up() -> None:
    [_, (decision, cancel)] = link([msg("A01", "ADM", 0), msg("A11", "CAN", 5)])
    assert decision.outcome is Outcome.CANCEL_LINKED
    assert decision.withdraws_follow_up_of is None
    assert cancel.record.accepted is not None
    assert cancel.record.accepted.destinations == (("team", True),)  # the GP never had it


def test_an_a11_cancels_a_registration_in_the_batch() -> None:
    [_, (decision, _)] = link([msg("A04", "REG", 0), msg("A11", "CAN", 5)])
    assert decision.corrects == eid("REG")


def test_an_a11_asks_the_store_for_an_admission_then_a_registration() -> None:
    admission = FindOriginal(PK, STAY, "admission")
    registration = FindOriginal(PK, STAY, "registration")
    store = FakeStore(originals={registration: Original(eid("REG"), ("team",))})
    [(decision, _)] = link([msg("A11", "CAN", 5)], store)
    assert store.asked == [admission, registration]
    assert decision.corrects == eid("REG")
    store = FakeStore(originals={admission: Original(eid("ADM"), ("team",)),
                                 registration: Original(eid("REG"), ("team",))})  # fmt: skip
    [(decision, _)] = link([msg("A11", "CAN", 5)], store)
    assert store.asked == [admission]
    assert decision.corrects == eid("ADM")


def test_two_cancels_of_one_stored_original_ask_the_store_once() -> None:
    question = FindOriginal(PK, STAY, "discharge")
    store = FakeStore(originals={question: Original(eid("DIS"), ("team", "gp"))})
    decisions = link([msg("A13", "CAN1", 90), msg("A13", "CAN2", 95)], store)
    assert [d.corrects for d, _ in decisions] == [eid("DIS"), eid("DIS")]
    assert store.asked == [question]


# ---- late originals -----------------------------------------------------------------------


def test_a_discharge_after_its_cancel_in_the_batch_is_superseded() -> None:
    [(first, _), (decision, late)] = link([msg("A13", "CAN", 90), msg("A03", "DIS", 60)])
    assert first.outcome is Outcome.CANCEL_WITHOUT_ORIGINAL
    assert decision.outcome is Outcome.SUPERSEDED
    assert decision.links_cancel == decision.corrects == eid("CAN")
    accepted = late.record.accepted
    assert accepted is not None
    assert accepted.destinations == ()
    assert accepted.corrects == accepted.links_cancel == eid("CAN")
    assert accepted.withdraws_follow_up_of is None
    assert accepted.follow_up is None  # no clock for a discharge cancelled before it came
    assert msg("A03", "DIS", 60).record.accepted.follow_up is not None  # type: ignore[union-attr]
    assert event_of(late).corrects_event_id is None
    assert any("already cancelled by" in w for w in event_of(late).warnings)


def test_a_discharge_that_happened_after_the_cancel_is_a_new_one() -> None:
    [_, (decision, later)] = link([msg("A13", "CAN", 0), msg("A03", "DIS", 60)])
    assert decision.outcome is Outcome.AS_ROUTED
    assert later.record.accepted is not None
    assert later.record.accepted.destinations == (("team", True), ("gp", False))


def test_a_discharge_after_an_unmatched_cancel_in_the_store_is_superseded() -> None:
    late = msg("A03", "DIS", 60)
    assert late.record.accepted is not None
    question = FindEarlyCancel(PK, STAY, "cancel_discharge", late.record.accepted.occurred_at)
    store = FakeStore(unmatched_cancels=frozenset({PK}), early_cancels={question: eid("CAN")})
    [(decision, _)] = link([late], store)
    assert store.asked == [question]
    assert decision.outcome is Outcome.SUPERSEDED
    assert decision.links_cancel == eid("CAN")


def test_only_patients_with_an_unmatched_cancel_are_asked_about_one() -> None:
    item = msg("A03", "DIS", 60)
    assert item.record.accepted is not None
    occurred = item.record.accepted.occurred_at
    store = FakeStore(early_cancels={FindEarlyCancel(PK, STAY, "cancel_discharge", occurred): "x"})
    [(decision, _)] = link([item], store)
    assert store.asked == []
    assert decision.outcome is Outcome.AS_ROUTED


def test_a_cancel_that_corrected_its_original_supersedes_nothing_later() -> None:
    batch = [msg("A03", "DIS", 60), msg("A13", "CAN", 90), msg("A03", "DIS2", 80)]
    [*_, (decision, _)] = link(batch)
    assert decision.outcome is Outcome.AS_ROUTED


def test_a_late_transfer_is_superseded_by_its_cancel() -> None:
    [_, (decision, _)] = link([msg("A12", "CAN", 90), msg("A02", "TRA", 60)])
    assert decision.outcome is Outcome.SUPERSEDED
    assert decision.starts_follow_up is False
    assert decision.withdraws_follow_up_of is None


# ---- changed discharges ---------------------------------------------------------------------


def test_a_second_discharge_in_the_batch_replaces_the_first() -> None:
    [_, (decision, changed)] = link([msg("A03", "DIS", 60), msg("A03", "DIS2", 75)])
    assert decision.outcome is Outcome.CHANGED_DISCHARGE
    assert decision.withdraws_follow_up_of == eid("DIS")
    accepted = changed.record.accepted
    assert accepted is not None
    assert accepted.withdraws_follow_up_of == eid("DIS")
    assert accepted.corrects is None
    assert accepted.links_cancel is None
    assert accepted.follow_up is not None  # its own clock starts
    assert accepted.destinations == (("team", True), ("gp", False))
    assert event_of(changed).corrects_event_id == eid("DIS")


def test_a_second_discharge_replaces_the_standing_one_in_the_store() -> None:
    question = StandingDischarge(PK, STAY)
    store = FakeStore(discharges=frozenset({PK}), standing={question: eid("DIS")})
    [(decision, _)] = link([msg("A03", "DIS2", 75)], store)
    assert store.asked == [question]
    assert decision.outcome is Outcome.CHANGED_DISCHARGE
    assert decision.withdraws_follow_up_of == decision.corrects_event_id == eid("DIS")


def test_a_first_discharge_asks_nothing_of_a_store_without_discharges() -> None:
    store = FakeStore(standing={StandingDischarge(PK, STAY): eid("DIS")})
    [(decision, _)] = link([msg("A03", "DIS", 75)], store)
    assert store.asked == []
    assert decision.outcome is Outcome.AS_ROUTED


def test_a_discharge_after_a_cancelled_one_in_the_batch_is_a_new_discharge() -> None:
    batch = [msg("A03", "DIS", 60), msg("A13", "CAN", 70), msg("A03", "DIS2", 90)]
    [*_, (decision, _)] = link(batch)
    assert decision.outcome is Outcome.AS_ROUTED


def test_the_batchs_own_standing_discharge_wins_over_the_store() -> None:
    question = StandingDischarge(PK, STAY)
    store = FakeStore(discharges=frozenset({PK}), standing={question: eid("OLD")})
    [(first, _), (second, _)] = link([msg("A03", "DIS", 60), msg("A03", "DIS2", 75)], store)
    assert store.asked == [question]  # for the first only
    assert first.withdraws_follow_up_of == eid("OLD")
    assert second.withdraws_follow_up_of == eid("DIS")


def test_a_discharge_after_a_cancel_of_the_stored_one_in_its_batch_is_a_new_discharge() -> None:
    """The store still holds the cancelled discharge as standing: the batch's cancel is not
    written yet. It was recorded as replaced (and named as corrected) before this was fixed."""
    standing = StandingDischarge(PK, STAY)
    store = FakeStore(
        originals={FindOriginal(PK, STAY, "discharge"): Original(eid("DIS"), ("team", "gp"))},
        discharges=frozenset({PK}),
        standing={standing: eid("DIS")},
    )
    [(cancel, _), (decision, newer)] = link([msg("A13", "CAN", 70), msg("A03", "DIS2", 90)], store)
    assert cancel.corrects == eid("DIS")
    assert standing in store.asked
    assert decision.outcome is Outcome.AS_ROUTED
    assert event_of(newer).corrects_event_id is None
    assert newer.record.accepted is not None
    assert newer.record.accepted.withdraws_follow_up_of is None


def test_a_cancel_of_another_discharge_leaves_the_stored_one_standing() -> None:
    other_stay = Patient(P.nhs_number, "OTHER", P.family, P.given)
    store = FakeStore(
        discharges=frozenset({PK}), standing={StandingDischarge(PK, STAY): eid("DIS")}
    )
    batch = [msg("A03", "ELSE", 50, other_stay), msg("A13", "CAN", 70, other_stay),
             msg("A03", "DIS2", 90)]  # fmt: skip
    [*_, (decision, _)] = link(batch, store)
    assert decision.outcome is Outcome.CHANGED_DISCHARGE
    assert decision.withdraws_follow_up_of == eid("DIS")


def test_a_newer_discharge_in_the_batch_of_an_unmatched_cancel_is_delivered() -> None:
    [(first, _), (decision, dis)] = link([msg("A13", "CAN", 0), msg("A03", "DIS", 60)])
    assert first.outcome is Outcome.CANCEL_WITHOUT_ORIGINAL
    assert decision.outcome is Outcome.AS_ROUTED
    assert dis.record.accepted is not None
    assert dis.record.accepted.destinations == (("team", True), ("gp", False))


# ---- merges and the rest --------------------------------------------------------------------


def merge(survivor: Patient, retired_mrn: str, control_id: str) -> Prepared:
    ts = at(120).strftime("%Y%m%d%H%M%S")
    payload = (
        f"MSH|^~\\&|EPR|RXT|CB|NHS|{ts}||ADT^A40^ADT_A39|{control_id}|P|2.4\r"
        f"EVN|A40|{ts}||||{ts}\r"
        f"PID|1||{survivor.nhs_number}^^^NHS^NH~{survivor.mrn}^^^RXT^MR||{survivor.family}^"
        f"{survivor.given}||19800101|2\r"
        f"MRG|{retired_mrn}^^^RXT^MR\r"
    ).encode()
    return prepare("mh", payload, config=CONFIG, profiles=feed_profiles(CONFIG),
                   received_at=at(121))  # fmt: skip


def test_a_merge_rekeys_the_retired_identities_to_the_survivor() -> None:
    item = merge(P, "RXT0999", "MRG")
    [(decision, linked)] = link([item])
    assert decision.outcome is Outcome.MERGE
    assert decision.rekeys == ("local:mh:RXT:RXT0999",)
    assert linked.record.accepted is not None
    assert linked.record.accepted.retired_keys == decision.rekeys
    assert linked.record.accepted.patient_key == PK
    assert item.record.accepted is not None
    assert item.record.accepted.retired_keys == ()  # only the decision re-keys


def test_a_rejected_message_and_an_ordinary_event_are_as_routed() -> None:
    rejected = prepare("mh", b"MSH|nonsense", config=CONFIG, profiles=feed_profiles(CONFIG),
                       received_at=T0)  # fmt: skip
    admission = msg("A01", "ADM", 0)
    [(first, out1), (second, out2)] = link([rejected, admission])
    assert first.outcome is second.outcome is Outcome.AS_ROUTED
    assert out1 is rejected
    assert out2 is admission
