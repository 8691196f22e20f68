"""structlog set up once, at the edge: JSON lines on stderr, context bound per message.

Log lines carry identifiers of messages and deliveries, never payloads, names or NHS numbers.
Code is written that way; `redact_digits` is a second line of defence that blanks any run of
ten digits (an NHS number, spaced or not) that reaches a log line by mistake.

A delivery's identifiers are bound once per delivery with `delivery_context` (one context
variable holding the fields, merged into each line by `merge_delivery_context`) rather than
with structlog's `bound_contextvars`, which sets and resets one context variable per field:
measurably dear at one delivery per message.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import json
import logging
import re
import sys
import threading
import time
from collections.abc import Iterator, Mapping, MutableMapping
from datetime import UTC, date, datetime
from datetime import time as time_of_day
from enum import Enum
from typing import Any, TextIO
from uuid import UUID

import orjson
import structlog

_TEN_DIGITS = re.compile(r"(?<!\d)\d{3}[ -]?\d{3}[ -]?\d{4}(?!\d)")
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


_DELIVERY: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar(
    "carebridge_delivery", default=None
)


@contextlib.contextmanager
def delivery_context(
    *, event_id: str, delivery_id: int, destination: str, event_kind: str
) -> Iterator[None]:
    """Within it, every log line of this task carries the delivery's identifiers (never
    its payload). A field given to the line itself wins."""
    token = _DELIVERY.set(
        {
            "event_id": event_id,
            "delivery_id": delivery_id,
            "destination": destination,
            "event_kind": event_kind,
        }
    )
    try:
        yield
    finally:
        _DELIVERY.reset(token)


def outside_delivery() -> contextvars.Context:
    """A copy of the current context without a delivery's identifiers, for a task started
    from within a delivery that works for all of them."""
    context = contextvars.copy_context()
    context.run(_DELIVERY.set, None)
    return context


def merge_delivery_context(
    _logger: object, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """The processor that puts `delivery_context`'s fields into a line, first (as
    structlog's `merge_contextvars` does with its own)."""
    fields = _DELIVERY.get()
    if fields is None:
        return event_dict
    merged = dict(fields)
    merged.update(event_dict)
    return merged


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _TEN_DIGITS.sub("[redacted]", value)
    if isinstance(value, dict):
        return {_scrub(k) if isinstance(k, str) else k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub(v) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):
        # Raw bytes are a payload, or part of one: never written, whatever they hold.
        return f"<{type(value).__name__}, {memoryview(value).nbytes} bytes>"
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, Enum):  # written as its value, which may be text
        return _scrub(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):  # written as an object
        return {f.name: _scrub(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return _scrub(str(value))  # what the renderer would write (orjson's default=str), scrubbed


def redact_digits(
    _logger: object, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    # Most lines hold no ten-digit run at all: a search of each text says so without building
    # anything; a line with one, or with any value that is not plain (nested, bytes, a set, an
    # object the renderer would write with str()), is scrubbed field by field. The fields'
    # names are the code's (keyword arguments), not data: only keys inside values are scrubbed.
    for key, value in event_dict.items():
        if isinstance(value, str):
            if key != "timestamp" and _TEN_DIGITS.search(value) is not None:
                return _redact_each(event_dict)
        elif not isinstance(value, _PLAIN) and key not in _LEFT_AS_THEY_ARE:
            return _redact_each(event_dict)
    return event_dict


_PLAIN = (int, float, type(None), datetime, date, time_of_day, UUID)
"""Values written as they are. Integers are never scrubbed: they are counts, ids and ports (an
NHS number is text everywhere in the engine); dates and UUIDs cannot hold a ten-digit run."""
_LEFT_AS_THEY_ARE = ("timestamp", "level", "_record", "_from_structlog")
"""The time and level, and structlog's own record of a standard-library line (removed before
rendering; a later processor may read it)."""


def _redact_each(event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event_dict.items()):
        if key not in _LEFT_AS_THEY_ARE:
            event_dict[key] = _scrub(value)
    return event_dict


_HELD: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "carebridge_held_lines", default=None
)


class _LineWriter:
    """structlog's logger: each line written whole with one write, or, within `one_write()`,
    held and written together with the block's other lines at its end (one write call, one
    flush, for a batch's lines). One for all loggers (structlog's `WriteLoggerFactory` makes a
    logger, and finds its file's lock, for every line)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def msg(self, message: str) -> None:
        held = _HELD.get()
        if held is not None:
            held.append(message)
            return
        self.write(message + "\n")

    def write(self, text: str) -> None:
        with self._lock:
            self._stream.write(text)
            self._stream.flush()

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


_WRITER: _LineWriter | None = None


@contextlib.contextmanager
def one_write() -> Iterator[None]:
    """Within it (synchronous code only: a block without an await), this thread's structlog
    lines are held and written at its end with one write, in order; each line still whole.
    Nested blocks write at the outermost one's end."""
    if _HELD.get() is not None or _WRITER is None:
        yield
        return
    held: list[str] = []
    token = _HELD.set(held)
    try:
        yield
    finally:
        _HELD.reset(token)
        if held:
            _WRITER.write("\n".join(held) + "\n")


class _Timestamp:
    """structlog's ``TimeStamper(fmt="iso", utc=True)`` (``2026-12-05T00:40:28.193378Z``, no
    fraction at a whole second, as `datetime.isoformat`), with the date and time of day
    formatted once a second instead of for every line."""

    __slots__ = ("_cached",)

    def __init__(self) -> None:
        self._cached: tuple[int, str] = (-1, "")
        """The second and its text, as one value: a line of another thread (the store's
        writer, an executor) reads both of the same second, never one of each."""

    def __call__(
        self, _logger: object, _name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        now = time.time()
        second = int(now)
        cached_second, text = self._cached
        if second != cached_second:
            text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._cached = (second, text)
        micro = int((now - second) * 1_000_000)
        event_dict["timestamp"] = f"{text}.{micro:06d}Z" if micro else text + "Z"
        return event_dict


def _orjson_text(obj: Any, **_kwargs: Any) -> str:
    try:
        return orjson.dumps(obj, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError:  # an integer over 64 bits: a log call must never raise
        return json.dumps(obj, default=str, skipkeys=True)


def configure(level: str = "info", fmt: str = "json", stream: TextIO | None = None) -> None:
    """Configure structlog and route the standard library's loggers (pika, aiohttp) through it."""
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_orjson_text)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        merge_delivery_context,
        structlog.processors.add_log_level,
        _Timestamp(),
        structlog.processors.format_exc_info,
        redact_digits,
    ]
    global _WRITER  # configured once per process, as structlog itself
    writer = _WRITER = _LineWriter(stream or sys.stderr)
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=lambda *_args: writer,  # one write a line (or a `one_write` block)
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # pika is chatty at INFO about every frame of a reconnect; its warnings are enough.
    root.setLevel(_LEVELS[level])
    logging.getLogger("pika").setLevel(max(_LEVELS[level], logging.WARNING))
    handler.addFilter(_ExpectedNetworkFaults())


class _ExpectedNetworkFaults(logging.Filter):
    """pika logs a dropped or reset broker connection as an ERROR with a traceback. For the
    engine that is an expected network event: the supervisor reconnects and says so itself
    (`amqp.connection_lost`, `amqp.reconnecting`). Keep pika's line, as a warning, without the
    traceback, so tracebacks in the log mean a real fault."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("pika") and record.levelno >= logging.ERROR:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            if record.exc_info and record.exc_info[1] is not None:
                record.msg = f"{record.getMessage()} ({type(record.exc_info[1]).__name__})"
                record.args = None
            record.exc_info = None
            record.exc_text = None
        return True
