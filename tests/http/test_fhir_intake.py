"""FHIR intake over real sockets: every body up to the limit is read whole (chunked or with
Content-Length), one byte over is 413, the sender is checked before its body is read, a body
cut short or too slow is never handed on, and odd credentials are a 400 or 401, never a 500."""

from __future__ import annotations

import asyncio
import json

import pytest
import structlog

from adapters.http_server import HttpLimits
from tests.http.fhir import AUTHORISED, MAX, TOKEN, bundle_of, fhir_listener
from tests.http.wire import ask, closed_by_server, connect, eventually, head, post, read_answer

SIZES = [1_000_000, 4_000_000, 8_000_000, MAX]


@pytest.mark.parametrize("is_chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("size", SIZES, ids=["1MB", "4MB", "8MB", "limit"])
async def test_a_valid_bundle_up_to_the_limit_is_read_whole_and_accepted(
    size: int, is_chunked: bool
) -> None:
    body = bundle_of(size)
    async with fhir_listener() as fhir:
        answer = await post(fhir.port, "/fhir/mh", body, AUTHORISED, is_chunked=is_chunked)
    assert answer.status == 202, answer.body[:300]
    assert fhir.published.bodies == [body]


@pytest.mark.parametrize("is_chunked", [False, True], ids=["content-length", "chunked"])
async def test_one_byte_over_the_limit_is_413_and_nothing_is_handed_on(is_chunked: bool) -> None:
    body = bundle_of(MAX + 1)
    async with fhir_listener() as fhir:
        answer = await post(fhir.port, "/fhir/mh", body, AUTHORISED, is_chunked=is_chunked)
    assert answer.status == 413
    assert json.loads(answer.body)["issue"][0]["code"] == "too-long"
    assert fhir.published.bodies == []


async def test_content_length_over_the_limit_is_413_before_a_byte_of_body_is_sent() -> None:
    async with fhir_listener() as fhir:
        answer = await ask(fhir.port, head("POST", "/fhir/mh", {
            **AUTHORISED, "Content-Length": str(MAX + 1)}))  # fmt: skip
    assert answer.status == 413


@pytest.mark.parametrize(
    ("path", "token", "status"),
    [("/fhir/mh", "wrong-token", 401), ("/fhir/mh", None, 401), ("/fhir/nope", TOKEN, 404)],
)
async def test_a_sender_not_admitted_is_answered_before_its_huge_body_is_read(
    path: str, token: str | None, status: int
) -> None:
    headers = {"Content-Type": "application/fhir+json", "Content-Length": str(1 << 30)}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with fhir_listener() as fhir:
        reader, writer = await connect(fhir.port)
        writer.write(head("POST", path, headers) + b"{" + b" " * 1000)  # a gigabyte announced
        answer = await read_answer(reader)
        assert await closed_by_server(reader), "the connection is not kept for the body"
        writer.close()
    assert answer.status == status
    assert answer.headers["connection"] == "close"
    assert fhir.published.bodies == []


async def test_expect_continue_asks_for_the_body_only_from_an_admitted_sender() -> None:
    body = bundle_of(1_000_000)
    async with fhir_listener() as fhir:
        refused = await ask(fhir.port, head("POST", "/fhir/mh", {
            "Authorization": "Bearer wrong", "Content-Type": "application/fhir+json",
            "Content-Length": str(len(body)), "Expect": "100-continue"}))  # fmt: skip
        reader, writer = await connect(fhir.port)
        writer.write(head("POST", "/fhir/mh", {**AUTHORISED, "Content-Length": str(len(body)),
                                               "Expect": "100-continue"}))  # fmt: skip
        go_on = await read_answer(reader)
        writer.write(body)
        accepted = await read_answer(reader, within=30)
        writer.close()
    assert refused.status == 401
    assert (go_on.status, accepted.status) == (100, 202)
    assert fhir.published.bodies == [body]


async def test_a_body_cut_short_is_never_handed_on() -> None:
    body = bundle_of(1_000_000)
    with structlog.testing.capture_logs() as logs:
        async with fhir_listener() as fhir:
            _, writer = await connect(fhir.port)
            writer.write(head("POST", "/fhir/mh", {**AUTHORISED, "Content-Length": str(len(body))}))
            writer.write(body[: len(body) // 2])
            await writer.drain()
            writer.close()
            await eventually(lambda: any(e["event"] == "fhir_http.body_cut_short" for e in logs),
                             "the listener saw the body cut short")  # fmt: skip
            answer = await post(fhir.port, "/fhir/mh", body, AUTHORISED, is_chunked=True)
    assert answer.status == 202
    assert fhir.published.bodies == [body], "only the whole body was handed on"


async def test_a_body_slower_than_the_body_timeout_is_408_and_not_handed_on() -> None:
    body = bundle_of(20_000)
    async with fhir_listener(HttpLimits(body_timeout=0.5)) as fhir:
        reader, writer = await connect(fhir.port)
        writer.write(head("POST", "/fhir/mh", {**AUTHORISED, "Content-Length": str(len(body))}))
        writer.write(body[:100])
        answer = await read_answer(reader)
        writer.close()
    assert answer.status == 408
    assert fhir.published.bodies == []


ODD_AUTHORIZATION = [
    b"Bearer \xff\xfe",
    b"Bearer \xc3\xa9t\xc3\xa9",
    b"\xff",
    b"Bearer a b",
    b"Bearer",
    b"Bearer " + b"x" * 4000,
    b"Basic Zm9vOmJhcg==",
    b"bearer\t" + TOKEN.encode() + b"\xe2\x80\x8b",
]


@pytest.mark.parametrize("value", ODD_AUTHORIZATION)
async def test_odd_authorization_headers_are_400_or_401_never_500(value: bytes) -> None:
    body = bundle_of(20_000)
    raw = head("POST", "/fhir/mh", {"Content-Type": "application/fhir+json",
                                    "Content-Length": str(len(body))})  # fmt: skip
    raw = raw[:-2] + b"Authorization: " + value + b"\r\n\r\n" + body
    async with fhir_listener() as fhir:
        answer = await ask(fhir.port, raw)
    assert answer.status in (400, 401), answer
    assert json.loads(answer.body)["resourceType"] == "OperationOutcome"
    assert fhir.published.bodies == []


async def test_many_senders_at_once_each_get_their_whole_body_through() -> None:
    bodies = [bundle_of(300_000 + i) for i in range(8)]
    async with fhir_listener() as fhir:
        answers = await asyncio.gather(*(
            post(fhir.port, "/fhir/mh", body, AUTHORISED, is_chunked=i % 2 == 0, piece=7_001)
            for i, body in enumerate(bodies)))  # fmt: skip
    assert [a.status for a in answers] == [202] * len(bodies)
    assert sorted(fhir.published.bodies) == sorted(bodies)
