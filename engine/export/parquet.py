"""Writing the export's tables as Parquet, partitioned by day (``<table>/day=YYYY-MM-DD/``),
with a fixed schema per table so every file of a table reads as one dataset."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

_TS = pa.timestamp("us", tz="UTC")
_COMMON = [
    ("pseudonym", pa.string()), ("event_ref", pa.string()), ("source", pa.string()),
    ("care_setting", pa.string()), ("provider_ods", pa.string()), ("site_ods", pa.string()),
    ("ward", pa.string()), ("treatment_function", pa.string()), ("age_band", pa.string()),
    ("gp_practice", pa.string()), ("postcode_district", pa.string()),
]  # fmt: skip
_TRANSITIONS = [("kind", pa.string()), ("occurred_at", _TS), ("received_at", _TS),
                ("corrects_ref", pa.string())]  # fmt: skip
_SPELLS = [
    ("admitted_at", _TS), ("discharged_at", _TS), ("length_of_stay_days", pa.float64()),
    ("admission_method", pa.string()), ("discharge_destination", pa.string()),
    ("discharge_method", pa.string()), ("legal_status_on_admission", pa.string()),
    ("legal_status_at_discharge", pa.string()), ("notified_at", _TS),
    ("seconds_to_notification", pa.float64()), ("to_adult_services", pa.bool_()),
    ("out_of_area", pa.bool_()),
]  # fmt: skip
_FOLLOW_UPS = [
    ("rule", pa.string()), ("standard", pa.string()), ("discharged_at", _TS), ("due_at", _TS),
    ("acknowledged_at", _TS), ("done_at", _TS), ("met", pa.bool_()),
    ("hours_to_done", pa.float64()),
]  # fmt: skip
SCHEMAS = {
    "transitions": pa.schema(_COMMON + _TRANSITIONS),
    "spells": pa.schema(_COMMON + _SPELLS),
    "follow_ups": pa.schema(_COMMON + _FOLLOW_UPS),
}
DAY_OF = {"transitions": "received_at", "spells": "discharged_at", "follow_ups": "due_at"}
"""The column whose UTC date partitions each table."""


def write_table(out: Path, table: str, rows: Sequence[dict[str, Any]], part: str) -> list[Path]:
    """`rows` of `table` as one file per day, named `part` (a rerun of the same part replaces
    its files rather than adding to them). Returns the files written."""
    by_day: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        moment = row.get(DAY_OF[table]) or row.get("received_at")
        day = moment.date().isoformat() if isinstance(moment, datetime) else "unknown"
        by_day[day].append(row)
    written = []
    schema = SCHEMAS[table]
    for day, day_rows in sorted(by_day.items()):
        folder = out / table / f"day={day}"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"part-{part}.parquet"
        temporary = target.with_suffix(".parquet.tmp")
        pq.write_table(pa.Table.from_pylist(day_rows, schema=schema), temporary)
        os.replace(temporary, target)
        written.append(target)
    return written
