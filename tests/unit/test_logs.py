"""Log lines: JSON, one a line; ten-digit runs redacted; pika's network noise without tracebacks."""

import asyncio
import dataclasses
import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path
from uuid import UUID

import pytest
import structlog

from engine import logs


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_an_nhs_number_that_slips_into_a_log_line_is_redacted() -> None:
    stream = io.StringIO()
    logs.configure("info", "json", stream)
    structlog.get_logger("t").info("something", detail="patient 943 476 5919 or 9434765919")
    [record] = lines(stream)
    assert record["detail"] == "patient [redacted] or [redacted]"


def test_a_reset_broker_connection_is_a_warning_without_a_traceback() -> None:
    stream = io.StringIO()
    logs.configure("info", "json", stream)
    try:
        raise ConnectionResetError(104, "Connection reset by peer")
    except ConnectionResetError:
        logging.getLogger("pika.adapters.utils.io_services_utils").error(
            "_AsyncBaseTransport._consume() failed, aborting connection", exc_info=True
        )
    [record] = lines(stream)
    assert record["level"] == "warning"
    assert "exception" not in record
    assert "ConnectionResetError" in str(record["event"])


def test_other_errors_keep_their_traceback() -> None:
    stream = io.StringIO()
    logs.configure("info", "json", stream)
    try:
        raise ValueError("a real fault")
    except ValueError:
        logging.getLogger("aiohttp.server").error("handler failed", exc_info=True)
    [record] = lines(stream)
    assert record["level"] == "error"
    assert "ValueError" in str(record["exception"])


def test_a_delivery_context_names_the_delivery_in_every_line_within_it_and_none_after() -> None:
    stream = io.StringIO()
    logs.configure("info", "json", stream)
    log = structlog.get_logger("t")
    with logs.delivery_context(
        event_id="ev-1", delivery_id=7, destination="gp", event_kind="discharge"
    ):
        log.info("inside")
        log.info("mine", destination="given")
    log.info("after")
    inside, given, after = lines(stream)
    assert {k: inside[k] for k in ("event_id", "delivery_id", "destination", "event_kind")} == {
        "event_id": "ev-1",
        "delivery_id": 7,
        "destination": "gp",
        "event_kind": "discharge",
    }
    assert given["destination"] == "given"  # a field of the line itself wins
    assert given["delivery_id"] == 7
    assert not {"event_id", "delivery_id", "destination", "event_kind"} & after.keys()


async def test_a_task_started_outside_the_delivery_does_not_carry_its_identifiers() -> None:
    stream = io.StringIO()
    logs.configure("info", "json", stream)
    log = structlog.get_logger("t")

    async def shared() -> None:
        log.info("shared")

    with logs.delivery_context(
        event_id="ev-1", delivery_id=7, destination="gp", event_kind="discharge"
    ):
        await asyncio.create_task(shared(), context=logs.outside_delivery())
        await asyncio.create_task(shared())
    outside, inherited = lines(stream)
    assert "delivery_id" not in outside
    assert inherited["delivery_id"] == 7


def test_digits_in_nested_values_are_redacted_and_other_fields_kept_as_they_are() -> None:
    stream = io.StringIO()
    logs.configure("info", "json", stream)
    structlog.get_logger("t").info(
        "something", detail={"nhs": "9434765919"}, items=["943-476-5919", 3], row=1234567890,
        key="MSG000123", run="12345678901",
    )  # fmt: skip
    [record] = lines(stream)
    assert record["detail"] == {"nhs": "[redacted]"}
    assert record["items"] == ["[redacted]", 3]
    # Only text is scrubbed, and only a run of exactly ten digits.
    assert (record["row"], record["key"], record["run"]) == (1234567890, "MSG000123", "12345678901")


def test_bytes_sets_and_objects_are_scrubbed_as_they_would_be_written() -> None:
    # The renderer writes what JSON has no type for with str(): that text is scrubbed too.
    class Kind(Enum):
        DISCHARGE = "discharge"
        NUMBER = "9434765919"

    @dataclasses.dataclass
    class Row:
        nhs: str
        count: int

    stream = io.StringIO()
    logs.configure("info", "json", stream)
    when, ident = datetime(2026, 12, 5, 6, 0, tzinfo=UTC), UUID(int=9434765919)
    structlog.get_logger("t").info(
        "something", ids={"9434765919"}, frozen=frozenset({"943 476 5919"}),
        error=ValueError("bad NHS number 9434765919"), path=Path("/tmp/9434765919.hl7"),
        keyed={"9434765919": {"943-476-5919": 1}}, row=Row("9434765919", 3), odd=Kind.NUMBER,
        when=when, ident=ident, kind=Kind.DISCHARGE, count=9434765919, ratio=0.5, none=None,
    )  # fmt: skip
    [record] = lines(stream)
    assert record["ids"] == ["[redacted]"]
    assert record["frozen"] == ["[redacted]"]
    assert record["error"] == "bad NHS number [redacted]"
    assert record["path"] == "/tmp/[redacted].hl7"
    assert record["keyed"] == {"[redacted]": {"[redacted]": 1}}
    assert record["row"] == {"nhs": "[redacted]", "count": 3}
    assert record["odd"] == "[redacted]"
    assert "9434765919" not in stream.getvalue().replace('"count":9434765919', "")
    # JSON's own types, dates, UUIDs and enums are written as before; integers are not text.
    assert record["when"] == "2026-12-05T06:00:00+00:00"
    assert record["ident"] == str(ident)
    assert (record["kind"], record["count"], record["ratio"], record["none"]) == (
        "discharge", 9434765919, 0.5, None)  # fmt: skip


def test_raw_bytes_are_never_written_only_their_size() -> None:
    stream = io.StringIO()
    logs.configure("info", "json", stream)
    payload = b"MSH|^~\\&|\rPID|1||9434765919^^^NHS||CANARY^PATIENT\r"
    structlog.get_logger("t").info(
        "something", raw=payload, view=memoryview(payload), array=bytearray(payload),
        nested=[payload],
    )  # fmt: skip
    [record] = lines(stream)
    size = len(payload)
    assert record["raw"] == f"<bytes, {size} bytes>"
    assert record["view"] == f"<memoryview, {size} bytes>"
    assert record["array"] == f"<bytearray, {size} bytes>"
    assert record["nested"] == [f"<bytes, {size} bytes>"]
    assert "CANARY" not in stream.getvalue()


def test_a_value_json_cannot_hold_never_makes_the_log_call_raise() -> None:
    stream = io.StringIO()
    logs.configure("info", "json", stream)
    structlog.get_logger("t").info("something", by_id={1: "a"}, big=2**70)
    [record] = lines(stream)
    assert record["by_id"] == {"1": "a"}
    assert record["big"] == 2**70


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def test_the_lines_of_a_one_write_block_are_written_together_at_its_end_in_order() -> None:
    stream = CountingStream()
    logs.configure("info", "json", stream)
    log = structlog.get_logger("t")
    log.info("before")
    with logs.one_write():
        log.info("first", n=1)
        with logs.one_write():  # nested: written with the outer block
            log.warning("second", detail="9434765919")
        log.info("third")
        assert stream.writes == 1  # only "before" so far
    assert stream.writes == 2
    log.info("after")
    assert [(r["event"], r["level"]) for r in lines(stream)] == [
        ("before", "info"), ("first", "info"), ("second", "warning"), ("third", "info"),
        ("after", "info")]  # fmt: skip
    assert lines(stream)[2]["detail"] == "[redacted]"


def test_a_one_write_block_left_by_an_exception_still_writes_its_lines() -> None:
    stream = io.StringIO()
    logs.configure("info", "json", stream)

    def fails() -> None:
        with logs.one_write():
            structlog.get_logger("t").info("kept")
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        fails()
    assert [r["event"] for r in lines(stream)] == ["kept"]


def test_the_timestamp_is_iso_8601_in_utc() -> None:
    stream = io.StringIO()
    logs.configure("info", "json", stream)
    before = datetime.now(UTC)
    structlog.get_logger("t").info("now")
    after = datetime.now(UTC)
    [record] = lines(stream)
    stamp = str(record["timestamp"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z", stamp)
    moment = datetime.fromisoformat(stamp)
    assert before - timedelta(milliseconds=1) <= moment <= after + timedelta(milliseconds=1)
