"""MLLP framing: `frame` wraps a message; `MllpDecoder` turns a byte stream into frames, with
no sockets (tested by feeding it bytes).

Framing is ``<VT 0x0B> message <FS 0x1C><CR 0x0D>``, read leniently:

- bytes before a start byte are discarded (and counted, for a log line); CR and LF between
  frames are not counted: they are the usual trailing CR or line noise;
- a frame ends at FS; the CR after it is expected but not required (it is dropped as a byte
  between frames, whenever it arrives);
- a start byte inside a frame means the sender gave up on that frame and began again: the
  partial frame is discarded unanswered, and the sender will resend it;
- a frame longer than `max_message_bytes` is read to its end but only its first
  `max_message_bytes` are kept, and it is reported as oversized.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = [
    "CARRIAGE_RETURN",
    "END_BLOCK",
    "READ_SIZE",
    "START_BLOCK",
    "Frame",
    "MllpDecoder",
    "frame",
]

START_BLOCK: Final = b"\x0b"
END_BLOCK: Final = b"\x1c"
CARRIAGE_RETURN: Final = b"\x0d"
READ_SIZE: Final = 64 * 1024
"""How much a listener or client reads from its socket at a time."""


def frame(message: bytes) -> bytes:
    """`message` wrapped in MLLP start and end bytes.

    A message containing a start or end byte cannot be framed: it would end early and the rest
    would be read as the next message. HL7 text never holds them (they are escaped as ``\\Xhh\\``).
    """
    if START_BLOCK in message or END_BLOCK in message:
        raise ValueError("a message holding an MLLP start or end byte cannot be framed")
    return START_BLOCK + message + END_BLOCK + CARRIAGE_RETURN


@dataclass(frozen=True, slots=True)
class Frame:
    """One complete frame's content, without the framing bytes."""

    payload: bytes
    oversized: bool = False
    """The frame was longer than the limit: `payload` holds only its first bytes."""


class MllpDecoder:
    """Turns a byte stream into frames. Feed it whatever arrives; it keeps partial frames."""

    def __init__(self, max_message_bytes: int) -> None:
        if max_message_bytes < 1:
            raise ValueError("max_message_bytes must be at least 1")
        self._max = max_message_bytes
        self._buffer = bytearray()
        self._length = 0
        """The open frame's length so far, bytes past the limit included."""
        self._in_frame = False
        self._oversized = False
        self.discarded = 0
        """Bytes thrown away so far: junk before a start byte and abandoned partial frames."""

    @property
    def in_frame(self) -> bool:
        """True between a start byte and its end byte."""
        return self._in_frame

    def feed(self, data: bytes) -> list[Frame]:
        """The frames `data` completes, in order."""
        frames: list[Frame] = []
        pos, size = 0, len(data)
        while pos < size:
            if not self._in_frame:
                start = data.find(START_BLOCK, pos)
                self._junk(data[pos : size if start < 0 else start])
                if start < 0:
                    break
                self._begin()
                pos = start + 1
                continue
            end = data.find(END_BLOCK, pos)
            stop = size if end < 0 else end
            restart = data.find(START_BLOCK, pos, stop)
            if restart >= 0:
                # The abandoned frame whole (its start byte and any bytes past the limit too,
                # in whatever chunks they came), so the count does not depend on the reads.
                self.discarded += 1 + self._length + (restart - pos)
                self._begin()
                pos = restart + 1
                continue
            self._append(data[pos:stop])
            if end < 0:
                break
            frames.append(Frame(bytes(self._buffer), self._oversized))
            self._in_frame = False
            self._buffer.clear()
            pos = end + 1
        return frames

    def _begin(self) -> None:
        self._in_frame = True
        self._oversized = False
        self._buffer.clear()
        self._length = 0

    def _append(self, chunk: bytes) -> None:
        self._length += len(chunk)
        room = self._max - len(self._buffer)
        if len(chunk) > room:
            self._oversized = True
            chunk = chunk[: max(room, 0)]
        self._buffer += chunk

    def _junk(self, chunk: bytes) -> None:
        self.discarded += len(chunk) - sum(chunk.count(b) for b in (b"\r", b"\n"))
