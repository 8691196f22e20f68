"""The acknowledgement pages over real sockets: the link opens a page (the token stays in the
fragment), the page posts the token with a name, each token works once and not after it
expires, refusals are clear pages, no token reaches a log, and odd bytes never make a 500."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
import sqlalchemy as sa
from structlog.testing import capture_logs

from engine import health, notifications
from engine.config import HttpConfig, NotificationDestination
from engine.store import Store
from engine.store.ack_links import issue_links
from engine.store.schema import follow_ups
from tests.store.test_ack_links import discharged, issued

pytestmark = pytest.mark.integration
ACK, DONE, OLD = "A" * 43, "D" * 43, "O" * 43
REFUSED = {400, 403, 404}


@dataclass
class Pages:
    url: str
    event_id: str

    def link(self, action: str) -> str:
        return f"{self.url}/notifications/clinicians/{self.event_id}/{action}"


@pytest.fixture
async def pages(store: Store) -> AsyncIterator[Pages]:
    destination = NotificationDestination.model_validate({
        "name": "clinicians", "type": "notification", "ack_base_url": "https://cb.example",
        "recipients": [{"name": "team", "url": "https://team.example/in"}],
    })  # fmt: skip
    event_id = await discharged(store)
    now = datetime.now(UTC)
    fresh, expired = now + timedelta(days=14), now
    await issue_links(store, [
        dataclasses.replace(issued(ACK, event_id, "ack"), issued_at=now, expires_at=fresh),
        dataclasses.replace(issued(DONE, event_id, "done"), issued_at=now, expires_at=fresh),
        dataclasses.replace(issued(OLD, event_id, "done"), issued_at=now, expires_at=expired),
    ])  # fmt: skip
    app = health.health_app(_ready, notifications.routes(store, {"clinicians": destination}))
    runner, port = await health.serve(app, HttpConfig(port=0))
    try:
        yield Pages(f"http://127.0.0.1:{port}", event_id)
    finally:
        await runner.cleanup()


async def _ready() -> dict[str, bool]:
    return {"store": True}


async def status_of(store: Store, event_id: str) -> tuple[str, str | None, str | None]:
    async with store.reading() as conn:
        row = (await conn.execute(sa.select(follow_ups.c.status, follow_ups.c.done_by,
               follow_ups.c.done_from).where(follow_ups.c.event_id == event_id))).one()  # fmt: skip
    return row.status, row.done_by, row.done_from


async def test_the_link_opens_a_page_and_the_post_carries_the_token_once(
    store: Store, pages: Pages, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with capture_logs() as logs:
        async with aiohttp.ClientSession() as s:
            async with s.get(pages.link("ack") + "#" + ACK) as r:  # the fragment is not sent
                page = await r.text()
                assert r.status == 200
                assert r.headers["Referrer-Policy"] == "no-referrer"
                assert r.headers["Cache-Control"] == "no-store"
                assert "script-src 'self'" in r.headers["Content-Security-Policy"]
            assert 'src="/notifications/link.js"' in page
            assert ACK not in page
            async with s.get(f"{pages.url}/notifications/link.js") as r:
                assert "location.hash" in await r.text()
            form = {"token": ACK, "by": "Nurse Duty"}
            async with s.post(pages.link("ack"), data=form) as r:
                assert (r.status, "Receipt acknowledged." in await r.text()) == (200, True)
            async with s.post(pages.link("ack"), data=form) as r:
                assert r.status == 403
                assert "already been used" in await r.text()
            async with s.post(pages.link("done"), data={"token": DONE}) as r:
                assert r.status == 400  # a follow-up done needs a name
            async with s.post(pages.link("done"), json={"token": DONE, "by": "Dr Lee"},
                              headers={"X-Forwarded-For": "198.51.100.9"}) as r:  # fmt: skip
                assert await r.json() == {"event_id": pages.event_id, "action": "done",
                                          "recorded": True, "outcome": "recorded"}  # fmt: skip
    assert await status_of(store, pages.event_id) == (
        "done", "Dr Lee", "127.0.0.1 (forwarded for 198.51.100.9)")  # fmt: skip
    logged = repr(logs) + caplog.text
    assert ACK not in logged
    assert DONE not in logged
    assert "notification.link_used" in logged


async def test_an_expired_or_old_link_is_refused_with_a_clear_page(
    store: Store, pages: Pages
) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.post(pages.link("done"), data={"token": OLD, "by": "Someone"}) as r:
            assert r.status == 403
            assert "This link has expired" in await r.text()
        async with s.post(pages.link("ack"), data={"token": DONE, "by": "Someone"}) as r:
            assert r.status == 403  # a done token does not acknowledge
            assert "not valid" in await r.text()
        old_style = f"{pages.url}/notifications/clinicians/{pages.event_id}?token=5c0f1234"
        async with s.get(old_style) as r:
            assert r.status == 403
            assert "no longer work" in await r.text()
    assert (await status_of(store, pages.event_id))[0] == "open"


async def raw(url: str, request: bytes) -> int:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 30)
    finally:
        writer.close()
    return int(line.split()[1])


def post(path: str, body: bytes, content_type: bytes, *headers: bytes) -> bytes:
    head = [b"Content-Type: " + content_type, b"Content-Length: " + str(len(body)).encode(),
            b"Connection: close", *headers]  # fmt: skip
    lines = b"".join(h + b"\r\n" for h in head)
    return b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n" + lines + b"\r\n" + body


async def test_odd_tokens_names_and_bodies_get_a_4xx_never_a_500(
    store: Store, pages: Pages
) -> None:
    path = f"/notifications/clinicians/{pages.event_id}/ack"
    form = b"application/x-www-form-urlencoded"
    odd = [b"\xff\xfe", "tökén".encode() * 9, b"%FF%FE", b"A" * 42, b"A" * 44, b"%00" * 43,
           b"\x00" * 43, "😀".encode() * 11]  # fmt: skip
    for value in odd:
        for request in (
            post(path, b"by=x&token=" + value, form),
            post(path, b'{"token": "' + value + b'"}', b"application/json"),
            post(
                path, b"token=" + ACK.encode() + b"&by=" + value, form, b"X-Forwarded-For: " + value
            ),
        ):
            assert await raw(pages.url, request) in REFUSED | {200}, request
    for body, content_type in (
        (b'{"token": 12, "by": ["x"]}', b"application/json"),
        (b"[1, 2]", b"application/json"),
        (b"{not json", b"application/json"),
        (b"\xff\xfe", b"application/json"),
        (b"--xyz\r\n\xff", b"multipart/form-data; boundary=xyz"),
        (b"token=x", b"application/x-www-form-urlencoded; charset=no-such-charset"),
    ):
        assert await raw(pages.url, post(path, body, content_type)) in REFUSED, body
    long_id = f"/notifications/clinicians/{'e' * 300}/ack"
    assert await raw(pages.url, post(long_id, b"token=" + ACK.encode(), form)) == 404
    assert await raw(pages.url, post(path.replace("/ack", "/nope"), b"", form)) == 404
