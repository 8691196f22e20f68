"""Log lines: JSON, one a line; ten-digit runs redacted; pika's network noise without tracebacks."""

import io
import json
import logging
from collections.abc import Iterator

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
