"""MLLP framing without sockets: bytes are fed to the decoder the way reads deliver them."""

import pytest

from adapters.mllp import Frame, MllpDecoder, frame

SB, EB, CR = b"\x0b", b"\x1c", b"\r"
MSG1 = b"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.4\rPID|1||X^^^R^MR\r"
MSG2 = b"MSH|^~\\&|A|B|C|D|20260101||ADT^A03|2|P|2.4\rPID|1||Y^^^R^MR\r"


def payloads(frames: list[Frame]) -> list[bytes]:
    assert not any(f.oversized for f in frames)
    return [f.payload for f in frames]


def test_a_framed_message_comes_out_without_its_framing_bytes() -> None:
    decoder = MllpDecoder(1024)
    assert payloads(decoder.feed(frame(MSG1))) == [MSG1]
    assert not decoder.in_frame
    assert decoder.discarded == 0


def test_frame_wraps_a_message_in_start_and_end_bytes() -> None:
    assert frame(b"MSH|x") == b"\x0bMSH|x\x1c\r"


@pytest.mark.parametrize("bad", [b"MSH|\x1c|x", b"MSH|\x0b|x"])
def test_a_message_holding_a_framing_byte_cannot_be_framed(bad: bytes) -> None:
    with pytest.raises(ValueError, match="cannot be framed"):
        frame(bad)


@pytest.mark.parametrize("chunk", [1, 2, 7, 64])
def test_a_frame_split_across_reads_comes_out_once_complete(chunk: int) -> None:
    decoder = MllpDecoder(1024)
    data = frame(MSG1)
    out: list[Frame] = []
    for i in range(0, len(data), chunk):
        got = decoder.feed(data[i : i + chunk])
        if i + chunk < len(data) - 1:  # not yet at the end byte
            assert got == []
            assert decoder.in_frame
        out += got
    assert payloads(out) == [MSG1]


def test_a_split_between_end_byte_and_cr_gives_the_frame_at_the_end_byte() -> None:
    decoder = MllpDecoder(1024)
    assert payloads(decoder.feed(SB + MSG1 + EB)) == [MSG1]
    assert decoder.feed(CR) == []
    assert decoder.discarded == 0


def test_several_frames_in_one_read_all_come_out_in_order() -> None:
    decoder = MllpDecoder(1024)
    got = decoder.feed(frame(MSG1) + frame(MSG2) + frame(MSG1))
    assert payloads(got) == [MSG1, MSG2, MSG1]


def test_a_complete_frame_and_the_start_of_the_next_in_one_read() -> None:
    decoder = MllpDecoder(1024)
    data = frame(MSG1) + frame(MSG2)
    cut = len(frame(MSG1)) + 10
    assert payloads(decoder.feed(data[:cut])) == [MSG1]
    assert decoder.in_frame
    assert payloads(decoder.feed(data[cut:])) == [MSG2]


def test_junk_before_the_start_byte_is_discarded_and_counted() -> None:
    decoder = MllpDecoder(1024)
    assert payloads(decoder.feed(b"GET / HTTP/1.0\r\n\r\n" + frame(MSG1))) == [MSG1]
    assert decoder.discarded == len(b"GET / HTTP/1.0")


def test_junk_between_frames_is_discarded() -> None:
    decoder = MllpDecoder(1024)
    got = decoder.feed(frame(MSG1) + b"xx\n" + frame(MSG2))
    assert payloads(got) == [MSG1, MSG2]
    assert decoder.discarded == 2


def test_junk_alone_gives_nothing_and_leaves_no_frame_open() -> None:
    decoder = MllpDecoder(1024)
    assert decoder.feed(b"hello") == []
    assert not decoder.in_frame
    assert decoder.discarded == 5


def test_a_missing_cr_after_the_end_byte_is_tolerated() -> None:
    decoder = MllpDecoder(1024)
    got = decoder.feed(SB + MSG1 + EB + SB + MSG2 + EB)
    assert payloads(got) == [MSG1, MSG2]
    assert decoder.discarded == 0


def test_lf_segment_endings_and_crlf_after_the_end_byte_are_kept_and_ignored() -> None:
    decoder = MllpDecoder(1024)
    lf_message = MSG1.replace(b"\r", b"\n")
    assert payloads(decoder.feed(SB + lf_message + EB + b"\r\n")) == [lf_message]
    assert decoder.discarded == 0


def test_a_start_byte_inside_a_frame_abandons_the_partial_frame() -> None:
    decoder = MllpDecoder(1024)
    got = decoder.feed(SB + b"MSH|half a mess" + frame(MSG2))
    assert payloads(got) == [MSG2]
    assert decoder.discarded == 1 + len(b"MSH|half a mess")


def test_an_abandoned_frame_split_across_reads_is_discarded_too() -> None:
    decoder = MllpDecoder(1024)
    assert decoder.feed(SB + b"MSH|half") == []
    assert payloads(decoder.feed(b" more" + frame(MSG2))) == [MSG2]


def test_an_oversized_frame_is_read_to_its_end_and_reported_with_its_head() -> None:
    decoder = MllpDecoder(16)
    got = decoder.feed(frame(MSG1))
    assert got == [Frame(MSG1[:16], oversized=True)]
    assert not decoder.in_frame


def test_an_oversized_frame_over_many_reads_keeps_only_the_limit_in_memory() -> None:
    decoder = MllpDecoder(32)
    assert decoder.feed(SB + b"MSH|" + b"x" * 100) == []
    assert decoder.feed(b"y" * 10_000) == []
    [big] = decoder.feed(b"z" * 10 + EB + CR)
    assert big.oversized
    assert big.payload == b"MSH|" + b"x" * 28


def test_the_frame_after_an_oversized_one_is_read_normally() -> None:
    decoder = MllpDecoder(len(MSG2))
    got = decoder.feed(frame(MSG1 + MSG1) + frame(MSG2))
    assert [f.oversized for f in got] == [True, False]
    assert got[1].payload == MSG2


def test_a_frame_exactly_at_the_limit_is_not_oversized() -> None:
    decoder = MllpDecoder(len(MSG1))
    assert payloads(decoder.feed(frame(MSG1))) == [MSG1]


def test_an_empty_frame_comes_out_empty() -> None:
    assert MllpDecoder(8).feed(SB + EB + CR) == [Frame(b"")]


def test_a_limit_below_one_byte_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        MllpDecoder(0)
