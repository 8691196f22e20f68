"""Fuzz target: the MLLP stream decoder (`adapters.mllp.framing.MllpDecoder`).

The input's first two bytes choose the size limit and a seed for where the stream is cut;
the rest is the byte stream. The decoder is fed the stream whole, one byte at a time, and in
chunks cut at the chosen places, and each run is compared with `reference_frames`, a plain
byte-at-a-time reading of the framing rules in the decoder's docstring.

Crash: any exception; a frame holding a start or end byte or longer than the limit; or any
difference from the reference (frames, their oversized flags, the discarded-byte count, or
whether a frame is left open) however the stream is cut: a lost, doubled or shifted byte.
"""

from __future__ import annotations

import random

from tests.fuzz.targets._support import check, instrumented, run

with instrumented(__name__ == "__main__"):
    from adapters.mllp.framing import END_BLOCK, START_BLOCK, Frame, MllpDecoder

_VT, _FS = START_BLOCK[0], END_BLOCK[0]
_QUIET = frozenset(b"\r\n")


def reference_frames(stream: bytes, limit: int) -> tuple[list[Frame], int, bool]:
    """(frames, discarded bytes, a frame left open), one byte at a time."""
    frames: list[Frame] = []
    discarded = 0
    current: bytearray | None = None
    for byte in stream:
        if current is None:
            if byte == _VT:
                current = bytearray()
            elif byte not in _QUIET:
                discarded += 1
        elif byte == _VT:
            discarded += len(current) + 1  # the abandoned frame, its start byte included
            current = bytearray()
        elif byte == _FS:
            frames.append(Frame(bytes(current[:limit]), len(current) > limit))
            current = None
        else:
            current.append(byte)
    return frames, discarded, current is not None


def _decode(chunks: list[bytes], limit: int) -> tuple[list[Frame], int, bool]:
    decoder = MllpDecoder(limit)
    frames: list[Frame] = []
    for chunk in chunks:
        frames += decoder.feed(chunk)
    return frames, decoder.discarded, decoder.in_frame


def _cuts(stream: bytes, seed: int) -> list[bytes]:
    chooser = random.Random(seed)
    chunks, pos = [], 0
    while pos < len(stream):
        size = chooser.choice((1, 2, 3, 7, 64)) if seed % 2 else chooser.randint(1, 16)
        chunks.append(stream[pos : pos + size])
        pos += size
    return chunks


def TestOneInput(data: bytes) -> None:
    if len(data) < 2:
        return
    limit = 1 + data[0] % 32 if data[0] < 128 else 64 * 1024
    seed, stream = data[1], data[2:]
    expected = reference_frames(stream, limit)
    for chunks in ([stream], [stream[i : i + 1] for i in range(len(stream))], _cuts(stream, seed)):
        got = _decode(chunks, limit)
        for found in got[0]:
            check(START_BLOCK not in found.payload, "a frame holds a start byte")
            check(END_BLOCK not in found.payload, "a frame holds an end byte")
            check(len(found.payload) <= limit, "a frame is longer than the limit")
        check(got[0] == expected[0], f"frames differ from the reference ({len(chunks)} chunks)")
        check(got[1] == expected[1], f"discarded {got[1]} bytes, not {expected[1]}")
        check(got[2] == expected[2], "the open frame differs from the reference")


if __name__ == "__main__":
    run(TestOneInput)
