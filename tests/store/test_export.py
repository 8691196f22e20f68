"""`carebridge export` on SQLite and PostgreSQL: a simulated fortnight recorded as intake
records it, some notifications delivered and follow-ups done; the Parquet read back with DuckDB
holds the right rows, no identifier of any patient, stable keyed pseudonyms, and a second export
adds only what is new. The queries of docs/insight.md run against it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from engine.config import Config, parse_config
from engine.export import STATE_FILE, export
from engine.export.rows import Pseudonymiser, age_band, postcode_district
from engine.preparation import prepare
from engine.simulate.journeys import journeys
from engine.simulate.messages import SimMessage, messages
from engine.simulate.pathways import packaged_pathways
from engine.store import AttemptRecord, Delivered, Store
from engine.store.follow_ups import record_follow_up

START = datetime(2026, 6, 1, tzinfo=UTC)
KEY = "pseudonym-key-for-tests-" + "k" * 20
CONFIG = """\
sources:
  - {name: mh-trust, care_setting: mental_health}
  - {name: acute-trust, care_setting: acute}
  - {name: community, care_setting: community}
destinations:
  - {name: team, type: webhook, url: "https://team.example/hook"}
  - name: notify
    type: notification
    ack_base_url: "https://cb.example"
    ack_secret: ${ACK}
    recipients: [{name: cmht, url: "https://cmht.example/notify"}]
routes:
  - {name: all, to: [team]}
  - {name: notify, match: {kinds: [discharge]}, to: [notify]}
transitions:
  provider_areas:
    RXT: {gp_practices: [Y99901, Y99902, Y99903]}
    RCB: {gp_practices: [Y99901, Y99902, Y99903]}
"""
INSIGHT = Path(__file__).resolve().parents[2] / "docs" / "insight.md"


def config() -> Config:
    return parse_config(CONFIG, env={"ACK": "a" * 40})


def traffic(patients: int, seed: int) -> list[SimMessage]:
    drawn = journeys(packaged_pathways(), patients=patients, seed=seed, start=START,
                     window=timedelta(days=14))  # fmt: skip
    events = sorted((e for j in drawn for e in j), key=lambda e: (e.at, e.journey, e.index))
    return [m for m in messages(events, seed=seed, messy_share=0.2, invalid_share=0.0)
            if m.event is not None and m.event.trigger != "A13"]  # fmt: skip


async def record(store: Store, sent: list[SimMessage]) -> None:
    cfg = config()
    records = [
        prepare(
            m.source,
            m.payload,
            config=cfg,
            profiles=cfg.feed_profiles,
            received_at=m.event.at + timedelta(minutes=2) if m.event else START,
            follow_up_rules=cfg.follow_up_rules,
        ).record
        for m in sent
    ]
    await store.record_intake(records)


async def deliver_notifications(store: Store) -> int:
    """Deliver every notification (one per patient per claim, in each patient's order)."""
    total = 0
    while claimed := await store.claim_due(["notify"], limit=1000, lease=timedelta(minutes=5),
                                           owner="test"):  # fmt: skip
        at = datetime.now(UTC)
        for delivery in claimed:
            await store.finish_delivery(delivery, [AttemptRecord(at, 5, "delivered", 200)],
                                        Delivered(at))  # fmt: skip
        total += len(claimed)
    return total


def query(sql: str, out: Path) -> list[tuple[object, ...]]:
    """`sql` with `transitions`, `spells` and `follow_ups` as views of the export in `out`."""
    connection = duckdb.connect()
    try:
        for table in ("transitions", "spells", "follow_ups"):
            if (out / table).exists():
                connection.execute(
                    f"CREATE VIEW {table} AS SELECT * FROM read_parquet("
                    f"'{out}/{table}/*/*.parquet', hive_partitioning = true)"
                )
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


async def test_export_writes_pseudonymised_rows_by_day_and_only_new_ones_next_time(
    store: Store, tmp_path: Path
) -> None:
    sent = traffic(60, seed=5)
    await record(store, sent)
    delivered = await deliver_notifications(store)
    out = tmp_path / "export"
    first = await export(
        store,
        config(),
        out,
        Pseudonymiser(KEY),
        settle=timedelta(0),
        now=START + timedelta(days=40),
    )
    assert first.rows["transitions"] == len(sent)
    discharges = sum(m.event is not None and m.event.trigger == "A03" for m in sent)
    assert first.rows["spells"] == discharges
    assert delivered > 0
    assert first.rows["follow_ups"] > 0  # every clock is due by now: none done, all settled

    assert query("SELECT count(*) FROM transitions", out) == [(len(sent),)]
    assert len(query("SELECT DISTINCT day FROM transitions", out)) > 5
    [(notified,)] = query("SELECT count(*) FROM spells WHERE seconds_to_notification > 0", out)
    assert notified == delivered

    second = await export(
        store,
        config(),
        out,
        Pseudonymiser(KEY),
        settle=timedelta(0),
        now=START + timedelta(days=41),
    )
    assert second.rows == {"transitions": 0, "spells": 0, "follow_ups": 0}
    more = traffic(10, seed=99)
    await record(store, more)
    third = await export(
        store,
        config(),
        out,
        Pseudonymiser(KEY),
        settle=timedelta(0),
        now=START + timedelta(days=42),
    )
    assert third.rows["transitions"] == len(more)
    assert query("SELECT count(*) FROM transitions", out) == [(len(sent) + len(more),)]
    assert (out / STATE_FILE).exists()


async def test_no_identifier_reaches_the_export_and_pseudonyms_need_the_key(
    store: Store, tmp_path: Path
) -> None:
    sent = traffic(40, seed=8)
    await record(store, sent)
    out, other = tmp_path / "a", tmp_path / "b"
    await export(
        store,
        config(),
        out,
        Pseudonymiser(KEY),
        settle=timedelta(0),
        now=START + timedelta(days=40),
    )
    await export(store, config(), other, Pseudonymiser("another-key-" + "z" * 30),
                 settle=timedelta(0), now=START + timedelta(days=40))  # fmt: skip
    forbidden = set()
    for m in sent:
        assert m.event is not None
        p = m.event.patient
        born = p.birth_date
        forbidden |= {p.nhs_number, p.mrn, p.family, p.given, p.postcode,
                      born.strftime("%Y-%m-%d"), born.strftime("%Y%m%d")}  # fmt: skip
    values: list[str] = []
    for table in ("transitions", "spells", "follow_ups"):
        rows = query(f"SELECT * FROM {table}", out)
        values += [str(v) for row in rows for v in row if v is not None]
    assert values
    text = "\n".join(values)
    leaked = sorted(value for value in forbidden if value in text)
    assert leaked == []
    assert not re.search(r"999\d{7}", text)  # no NHS number of the test range at all
    ours = {r[0] for r in query("SELECT pseudonym FROM transitions", out)}
    theirs = {r[0] for r in query("SELECT pseudonym FROM transitions", other)}
    assert len(ours) == len({m.event.patient.nhs_number for m in sent if m.event})
    assert ours.isdisjoint(theirs)


async def test_a_follow_up_done_in_time_is_met_and_one_never_done_is_not(
    store: Store, tmp_path: Path
) -> None:
    sent = traffic(40, seed=13)
    await record(store, sent)
    discharges = [m for m in sent if m.event is not None and m.event.trigger == "A03"]
    from mappings.profile import event_id

    done = [event_id(m.source, m.control_id) for m in discharges]
    marked = [e for e in done if await record_follow_up(store, e, "done", "team")]
    assert marked
    out = tmp_path / "export"
    # done now (the test's wall clock), long after every due time in June: none met
    summary = await export(
        store, config(), out, Pseudonymiser(KEY), settle=timedelta(0), now=datetime.now(UTC)
    )
    assert summary.rows["follow_ups"] >= len(marked)
    met = query("SELECT count(*) FILTER (WHERE met), count(*) FROM follow_ups", out)
    assert met == [(0, summary.rows["follow_ups"])]


def test_age_bands_and_postcode_districts() -> None:
    from datetime import date

    at = datetime(2026, 6, 1, tzinfo=UTC)
    assert age_band(date(2008, 6, 2), at) == "16-17"  # 17 the day before the 18th birthday
    assert age_band(date(2008, 6, 1), at) == "18-25"
    assert age_band(date(1950, 1, 1), at) == "65+"
    assert age_band(None, at) is None
    assert postcode_district("LS1 4AP") == "LS1"
    assert postcode_district("sw1a1aa") == "SW1A"
    assert postcode_district("not a postcode") is None
    with pytest.raises(ValueError, match="32"):
        Pseudonymiser("short")


async def test_every_query_in_the_insight_guide_runs_on_an_export(
    store: Store, tmp_path: Path
) -> None:
    sent = traffic(120, seed=21)
    await record(store, sent)
    await deliver_notifications(store)
    out = tmp_path / "export"
    await export(
        store,
        config(),
        out,
        Pseudonymiser(KEY),
        settle=timedelta(0),
        now=START + timedelta(days=60),
    )
    blocks = re.findall(r"```sql\n(.*?)```", INSIGHT.read_text(), re.S)
    assert len(blocks) == 7
    connection = duckdb.connect()
    try:
        connection.execute(blocks[0].replace("'export/", f"'{out}/"))
        results = [connection.execute(block).fetchall() for block in blocks[1:]]
    finally:
        connection.close()
    rate, readmissions, flags, out_of_area, young, notification = results
    assert sum(row[3] for row in flags) > 0
    assert rate, "the 72-hour rate has rows"
    assert all(0 <= row[4] <= 100 for row in rate)
    assert sum(row[1] for row in readmissions) > 0
    assert sum(row[2] for row in out_of_area) > 0  # the pathways send some from elsewhere
    assert young is not None
    assert sum(row[1] for row in notification) > 0
    flagged = query(
        "SELECT count(*) FILTER (WHERE out_of_area), count(*) FILTER (WHERE to_adult_services) "
        "FROM spells",
        out,
    )
    away = sum(m.event is not None and m.event.trigger == "A03" and m.event.patient.out_of_area
               and m.event.pathway.provider in ("RXT", "RCB") for m in sent)  # fmt: skip
    [(out_of_area_count, adult_count)] = flagged
    assert out_of_area_count == away
    assert away > 0
    assert isinstance(adult_count, int)
    assert adult_count > 0  # CAMHS discharges of 17 year olds


def test_the_export_command_needs_a_key_and_writes_to_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from engine.cli import main

    engine_config = tmp_path / "carebridge.yaml"
    engine_config.write_text(
        CONFIG.replace("${ACK}", "${ACK}")
        + f'store: {{url: "sqlite+aiosqlite:///{tmp_path / "cb.db"}"}}\n'
    )
    monkeypatch.setenv("ACK", "a" * 40)
    monkeypatch.delenv("CAREBRIDGE_PSEUDONYM_KEY", raising=False)
    out = tmp_path / "export"
    assert main(["export", "-c", str(engine_config), "--out", str(out)]) == 1
    assert "CAREBRIDGE_PSEUDONYM_KEY" in capsys.readouterr().err
    monkeypatch.setenv("CAREBRIDGE_PSEUDONYM_KEY", KEY)
    assert main(["export", "-c", str(engine_config), "--out", str(out)]) == 0
    assert "0 transitions, 0 spells, 0 follow_ups" in capsys.readouterr().out
    assert (out / STATE_FILE).exists()


async def test_a_run_repeated_after_a_crash_before_its_state_adds_nothing_twice(
    store: Store, tmp_path: Path
) -> None:
    sent = traffic(40, seed=31)
    await record(store, sent)
    out = tmp_path / "export"
    crashed = await export(store, config(), out, Pseudonymiser(KEY), settle=timedelta(0),
                           now=START + timedelta(days=30), batch=50)  # fmt: skip
    assert crashed.rows["follow_ups"] > 0
    (out / STATE_FILE).unlink()  # it died before writing its state
    more = traffic(10, seed=32)
    await record(store, more)
    await export(store, config(), out, Pseudonymiser(KEY), settle=timedelta(0),
                 now=START + timedelta(days=31), batch=50)  # fmt: skip
    assert query("SELECT count(*), count(DISTINCT event_ref) FROM transitions", out) == [
        (len(sent) + len(more), len(sent) + len(more))
    ]
    [(rows, distinct)] = query("SELECT count(*), count(DISTINCT event_ref) FROM follow_ups", out)
    assert rows == distinct
    assert isinstance(rows, int)
    assert rows >= crashed.rows["follow_ups"]


async def test_events_committed_less_than_the_settle_time_ago_wait_for_the_next_run(
    store: Store, tmp_path: Path
) -> None:
    sent = traffic(10, seed=33)
    await record(store, sent)
    out = tmp_path / "export"
    early = await export(store, config(), out, Pseudonymiser(KEY), now=START)
    assert early.rows["transitions"] == 0  # committed just now: not yet settled
    later = await export(store, config(), out, Pseudonymiser(KEY), settle=timedelta(0), now=START)
    assert later.rows["transitions"] == len(sent)
