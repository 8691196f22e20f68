"""The simulator's generator and checker: journeys are repeatable, every generated message and
its ground truth agree with what `carebridge map` and the engine's routing make of it, and the
verdict finds each kind of defect."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.config import Config, parse_config
from engine.delivery.notification import recipient_for
from engine.preparation import prepare
from engine.simulate.messages import SimMessage
from engine.simulate.pathways import PathwayError, load_pathways, packaged_pathways
from engine.simulate.run import Options, generate
from engine.simulate.truth import Expected, read_truth, write_truth
from engine.simulate.verdict import Receipt, verdict
from mappings.clinical.notification import is_notifiable
from mappings.errors import MappingError
from mappings.inbound import map_message

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SIM_CONFIG = """\
sources:
  - {name: mh-trust, care_setting: mental_health}
  - {name: acute-trust, care_setting: acute}
  - {name: community, care_setting: community}
destinations:
  - {name: team, type: webhook, url: "http://127.0.0.1:19101/team", allow_plain_http: true}
  - {name: pas, type: mllp, host: 127.0.0.1, port: 19103}
  - name: notify
    type: notification
    allow_plain_http: true
    ack_base_url: "https://cb.example"
    ack_secret: ${ACK}
    recipients:
      - {name: gp-y99901, url: "http://127.0.0.1:19102/gp", gp_practices: [Y99901]}
      - {name: acute-team, url: "http://127.0.0.1:19102/acute", providers: [RCB]}
      - {name: cmht, url: "http://127.0.0.1:19102/cmht"}
routes:
  - {name: mh, match: {sources: [mh-trust], kinds: [admission, transfer, discharge]}, to: [team]}
  - {name: leave, match: {kinds: [leave_start, leave_end, merge, person_update]}, to: [team]}
  - {name: discharges, match: {kinds: [discharge], care_settings: [acute, community]}, to: [pas]}
  - {name: notify, match: {kinds: [discharge, transfer]}, to: [notify]}
"""


def sim_config() -> Config:
    return parse_config(SIM_CONFIG, env={"ACK": "a" * 40})


def generated(
    patients: int = 120, seed: int = 7, now: datetime = NOW, via: str = "amqp"
) -> tuple[list[SimMessage], list[Expected]]:
    options = Options(sim_config(), packaged_pathways(), patients=patients, seed=seed,
                      messy=0.3, invalid=0.05, via=via)  # fmt: skip
    return generate(options, now)


def test_the_same_seed_gives_the_same_traffic_and_another_seed_other_traffic() -> None:
    first, _ = generated(seed=3)
    again, _ = generated(seed=3)
    other, _ = generated(seed=4)
    assert [m.payload for m in first] == [m.payload for m in again]
    assert [m.payload for m in first] != [m.payload for m in other]


def test_the_traffic_covers_what_the_pathways_promise() -> None:
    sent, truth = generated(patients=300)
    kinds = {t.kind for t in truth if t.accepted}
    assert {"admission", "transfer", "discharge", "leave_start", "leave_end", "update",
            "cancel_discharge", "merge"} <= kinds  # fmt: skip
    variants = {m.variant.split(":")[0] for m in sent}
    assert variants == {"clean", "messy", "invalid"}
    patients = {m.event.patient for m in sent if m.event is not None}
    assert any(p.under_18 for p in patients)
    assert any(p.out_of_area for p in patients)
    assert any(m.event.discharge_destination == "79" for m in sent if m.event is not None)


@pytest.mark.parametrize(
    ("now", "via"),
    [
        (NOW, "amqp"),
        (datetime(2026, 3, 31, tzinfo=UTC), "mllp"),
        (datetime(2026, 10, 27, tzinfo=UTC), "amqp"),
        (NOW, "fhir"),
    ],
    ids=["hl7v2", "hl7v2-across-clocks-forward", "hl7v2-across-clocks-back", "fhir"],
)
def test_every_message_agrees_with_carebridge_map_and_the_engines_routing(
    now: datetime, via: str
) -> None:
    config = sim_config()
    sent, truth = generated(patients=150, now=now, via=via)
    assert len(sent) == len(truth)
    for message, line in zip(sent, truth, strict=True):
        profile = config.feed_profiles[message.source]
        where = f"{message.control_id} ({message.variant})"
        if message.event is None:
            with pytest.raises(MappingError):
                map_message(message.payload, profile)
            continue
        event = map_message(message.payload, profile)
        assert event.kind.value == line.kind, where
        assert event.event_id == line.event_id, where
        assert f"nhs:{event.patient.nhs_number}" == line.patient, where
        assert event.occurred_at is not None
        # local times without an offset: exact, but for the hour the clocks go back, which
        # reads as its earlier instant
        assert message.event.at - event.occurred_at.utc in (timedelta(0), timedelta(hours=1))
        if message.event.trigger not in ("A31", "A40"):
            assert event.stay is not None
            assert event.stay.care_setting.value == message.event.pathway.setting, where
        assert is_notifiable(event) == (line.kind in ("discharge", "cancel_discharge")
                                        or _cross_site(message)), where  # fmt: skip
        prepared = prepare(message.source, message.payload, config=config,
                           profiles=config.feed_profiles, received_at=NOW)  # fmt: skip
        assert prepared.record.accepted is not None, where
        if line.kind != "cancel_discharge":  # a cancel follows its original (corrections)
            routed = [d for d, _ in prepared.record.accepted.destinations]
            assert routed == line.destinations, where
        if "notify" in line.receipts and line.kind != "cancel_discharge":
            dest = config.destination("notify")
            found = recipient_for(dest.recipients, event)  # type: ignore[union-attr]
            assert found is not None
            assert found.name == line.receipts["notify"], where


def _cross_site(message: SimMessage) -> bool:
    event = message.event
    return event is not None and event.trigger == "A02" and event.prior_site != event.site


def test_the_ground_truth_round_trips_through_jsonl(tmp_path: Path) -> None:
    _, truth = generated(patients=10)
    write_truth(truth, tmp_path / "truth.jsonl")
    assert read_truth(tmp_path / "truth.jsonl") == truth
    first = json.loads((tmp_path / "truth.jsonl").read_text().splitlines()[0])
    assert {"control_id", "kind", "patient", "receipts", "variant"} <= set(first)


def test_a_broken_pathway_names_the_file_and_the_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsetting: mental_health\nsource: s\nprovider: RXT\nsites: [A]\n"
                   "wards: [W]\ntreatment_functions: ['710']\npractices: [P]\n"
                   "steps: [{step: discharge}]\n")  # fmt: skip
    with pytest.raises(PathwayError) as caught:
        load_pathways([bad])
    assert caught.value.problems == [f"{bad}: steps: Value error, a pathway's first step is admit"]


def _perfect(truth: list[Expected]) -> list[Receipt]:
    return [
        Receipt(dest, receiver, line.event_id, f"{line.event_id}.{dest}")
        for line in truth
        for dest, receiver in line.receipts.items()
    ]


def test_the_verdict_is_clean_for_exactly_what_should_arrive() -> None:
    _, truth = generated(patients=60)
    verdicts = verdict(truth, _perfect(truth), ["team", "pas", "notify"])
    assert [v.defects for v in verdicts] == [0, 0, 0]
    assert all(v.expected == v.delivered > 0 for v in verdicts)


def test_the_verdict_finds_each_kind_of_defect() -> None:
    _, truth = generated(patients=60)
    receipts = [r for r in _perfect(truth) if r.destination == "team"]
    lost = receipts.pop(3)
    retry = receipts[0]
    receipts.append(retry)  # the same key again: a retry, not a defect
    receipts.append(Receipt("team", "team", receipts[1].event_id, "another-key"))  # duplicate
    receipts.append(Receipt("team", "team", "ev-never-sent", "k"))  # unexpected
    patient_lines = [t for t in truth if "team" in t.receipts and t.patient == truth[0].patient]
    [result] = verdict(truth, receipts, ["team"])
    assert result.missing == [next(t.control_id for t in truth if t.event_id == lost.event_id)]
    assert result.retries == 1
    assert result.duplicated == [receipts[1].event_id]
    assert result.unexpected == ["ev-never-sent"]
    assert result.defects == 3
    if len(patient_lines) >= 2:  # swap one patient's two events: out of order
        ids = [t.event_id for t in patient_lines[:2]]
        swapped = [r for r in receipts if r.event_id not in ids] + [
            Receipt("team", "team", ids[1], f"{ids[1]}.team"),
            Receipt("team", "team", ids[0], f"{ids[0]}.team"),
        ]
        [again] = verdict(truth, swapped, ["team"])
        assert truth[0].patient in again.out_of_order


def test_the_verdict_finds_a_notification_at_the_wrong_recipient() -> None:
    _, truth = generated(patients=60)
    receipts = _perfect(truth)
    target = next(i for i, r in enumerate(receipts) if r.destination == "notify")
    wrong = receipts[target]
    receipts[target] = Receipt("notify", "someone-else", wrong.event_id, wrong.key)
    [result] = verdict(truth, receipts, ["notify"])
    assert len(result.wrong_recipient) == 1
    assert result.defects == 1


def test_journeys_start_within_the_window() -> None:
    sent, _ = generated(patients=40)
    admissions = [m.event.at for m in sent if m.event is not None and m.event.index == 0]
    start = NOW - timedelta(days=7)
    assert all(start <= at <= NOW for at in admissions)


def test_the_shipped_simulation_config_is_served_on_this_machine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from engine.config import load_config
    from engine.simulate.receivers import NotLocal, plan_for

    monkeypatch.setenv("ACK_SECRET", "s" * 40)
    config = load_config(Path(__file__).resolve().parents[2] / "config" / "simulation.yaml")
    plan = plan_for(config)
    assert set(plan.destinations) == {"team", "pas", "notify"}
    assert {source.name for source in config.sources} == {p.source for p in packaged_pathways()}
    remote = parse_config(SIM_CONFIG.replace("127.0.0.1:19101", "team.example.nhs.uk"),
                          env={"ACK": "a" * 40})  # fmt: skip
    with pytest.raises(NotLocal):
        plan_for(remote)


def test_recipient_rules_the_truth_does_not_model_are_refused_not_misjudged() -> None:
    from engine.simulate.truth import NotModelled

    by_age = SIM_CONFIG.replace(
        '{name: cmht, url: "http://127.0.0.1:19102/cmht"}',
        '{name: cmht, url: "http://127.0.0.1:19102/cmht", min_age: 18}',
    )
    assert by_age != SIM_CONFIG
    config = parse_config(by_age, env={"ACK": "a" * 40})
    options = Options(config, packaged_pathways(), patients=5, seed=1)
    with pytest.raises(NotModelled, match="min_age"):
        generate(options, NOW)
