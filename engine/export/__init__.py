"""`carebridge export`: pseudonymised analytics data for integrated care boards, as Parquet
partitioned by day, incremental (docs/insight.md).

    store (events after the watermark; follow-ups settled since the cutoff)
      ─► rows (pure: keyed pseudonyms, no identifiers)       engine.export.rows
      ─► <out>/<table>/day=YYYY-MM-DD/part-<range>.parquet    engine.export.parquet
      ─► <out>/_export_state.json (watermark, cutoff)         written last

Tables: `transitions` (every accepted care event), `spells` (every discharge, with the spell it
ends and the time to the first clinician notification), `follow_ups` (each follow-up once its
outcome for the indicator is known: done by its due time, or due and not done). A run that dies
before the state is written is repeated whole by the next one: part files are named by the
point they start from (the watermark or cutoff they began at, which the repeat begins at too),
so the repeat replaces them instead of adding rows twice. Events are exported only once their
commit is `settle` old (ids are given at insert, commits may land out of id order across
replicas), so the watermark never passes an id still to commit.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from engine.config import Config, NotificationDestination
from engine.export.parquet import write_table
from engine.export.rows import Pseudonymiser, follow_up_row, spell_row, transition_row
from engine.store import Store
from engine.store.export import (
    events_after,
    first_deliveries,
    follow_ups_settled,
    settled_watermark,
)
from mappings.model import CareEvent

STATE_FILE = "_export_state.json"
TABLES = ("transitions", "spells", "follow_ups")
BEGINNING = datetime(2000, 1, 1, tzinfo=UTC)
SETTLE = timedelta(minutes=5)


@dataclass(slots=True)
class ExportState:
    watermark: int = 0
    """The last message log id whose event was exported."""
    cutoff: datetime = BEGINNING
    """Follow-ups settled up to this instant were exported."""


@dataclass(slots=True)
class ExportSummary:
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    files: list[Path] = field(default_factory=list)
    state: ExportState = field(default_factory=ExportState)


def read_state(out: Path) -> ExportState:
    path = out / STATE_FILE
    if not path.exists():
        return ExportState()
    data = json.loads(path.read_text("utf-8"))
    return ExportState(int(data["watermark"]), datetime.fromisoformat(data["cutoff"]))


def write_state(out: Path, state: ExportState) -> None:
    path = out / STATE_FILE
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"watermark": state.watermark,
                                     "cutoff": state.cutoff.isoformat()}) + "\n")  # fmt: skip
    os.replace(temporary, path)


async def export(
    store: Store, config: Config, out: Path, pseudonym: Pseudonymiser, *, now: datetime,
    batch: int = 5000, settle: timedelta = SETTLE,
) -> ExportSummary:  # fmt: skip
    """Export what is new since the last run into `out`; returns what was written. `now` is
    the cutoff for follow-up outcomes; events count once committed `settle` before the wall
    clock."""
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    state = await asyncio.to_thread(read_state, out)
    summary = ExportSummary(state=ExportState(state.watermark, now))
    notifying = [d.name for d in config.destinations if isinstance(d, NotificationDestination)]
    up_to = await settled_watermark(store, state.watermark, datetime.now(UTC) - settle)
    while found := await events_after(store, summary.state.watermark, batch, up_to):
        discharges = [e.event_id for e in found if e.kind == "discharge"]
        notified = await first_deliveries(store, discharges, notifying)
        transitions, spells = [], []
        for row in found:
            event = CareEvent.model_validate_json(row.body)
            transitions.append(transition_row(event, pseudonym, row.patient_key, row.corrects))
            if row.kind == "discharge":
                spells.append(spell_row(event, pseudonym, row.patient_key,
                                        notified.get(row.event_id)))  # fmt: skip
        part = f"{summary.state.watermark + 1:012d}"  # where this batch begins
        await _write(summary, out, "transitions", transitions, part)
        await _write(summary, out, "spells", spells, part)
        summary.state.watermark = found[-1].sequence
    settled = await follow_ups_settled(store, state.cutoff, now)
    rows = [
        follow_up_row(
            CareEvent.model_validate_json(f.body),
            pseudonym,
            f.patient_key,
            (f.rule, f.standard, f.discharged_at, f.due_at, f.acknowledged_at, f.done_at),
        )
        for f in settled
    ]
    stamp = f"outcomes-from-{state.cutoff:%Y%m%dT%H%M%S}"
    await _write(summary, out, "follow_ups", rows, stamp)
    await asyncio.to_thread(write_state, out, summary.state)
    return summary


async def _write(summary: ExportSummary, out: Path, table: str, rows: list[dict[str, object]],
                 part: str) -> None:  # fmt: skip
    if rows:
        summary.files += await asyncio.to_thread(write_table, out, table, rows, part)
        summary.rows[table] += len(rows)
