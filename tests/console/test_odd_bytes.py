"""No 500 from odd bytes: non-ASCII and malformed cookies, bearer tokens, CSRF values (form
field and header), form bodies and session ids get 400, 401 or 403 from the console, sent over
a raw socket exactly as written."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import pytest

from engine.store import Store
from tests.console.seed import accepted
from tests.console.web import console, signed_in

pytestmark = pytest.mark.integration
REFUSED = {400, 401, 403}


async def raw(url: str, request: bytes) -> int:
    """Send `request` as is; the status code of the answer."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(request)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 30)
    finally:
        writer.close()
    return int(status_line.split()[1])


def get(path: str, *headers: bytes) -> bytes:
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n" + b"".join(
        h + b"\r\n" for h in headers
    ) + b"Connection: close\r\n\r\n"  # fmt: skip


def post(path: str, body: bytes, *headers: bytes,
         content_type: bytes = b"application/x-www-form-urlencoded") -> bytes:  # fmt: skip
    head = [b"Content-Type: " + content_type, b"Content-Length: " + str(len(body)).encode()]
    return b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n" + b"".join(
        h + b"\r\n" for h in [*head, *headers]
    ) + b"Connection: close\r\n\r\n" + body  # fmt: skip


ODD = [
    b"\xff\xfe\xfd",
    "tökén-ünïcode".encode(),
    b"\x00\x01\x7f",
    b'"unterminated',
    b"a" * 43,  # the shape of a session id, naming none
    b"%FF%00%C3%28",
    b"=;=;;==",
    "😀".encode() * 20,
]


async def test_odd_cookies_and_bearer_tokens_are_refused(store: Store) -> None:
    async with console(store) as c:
        for value in ODD:
            for header in (
                b"Cookie: cb_session=" + value,
                b"Cookie: " + value,
                b"Authorization: Bearer " + value,
                b"Authorization: " + value,
            ):
                status = await raw(c.url, get("/dashboard", header))
                assert status in REFUSED, (header, status)


async def test_odd_sign_in_forms_are_refused(store: Store) -> None:
    async with console(store) as c:
        for value in ODD:
            for body in (b"name=olive&password=x&csrf=" + value,
                         b"name=" + value + b"&password=" + value + b"&csrf=x"):  # fmt: skip
                status = await raw(c.url, post("/login", body, b"Cookie: cb_login=" + value))
                assert status in REFUSED, (body, status)
        for content_type in (b"application/x-www-form-urlencoded; charset=no-such-charset",
                             b"multipart/form-data; boundary=xyz",
                             b"multipart/form-data", b"text/plain; charset=\xff"):  # fmt: skip
            body = post("/login", b"--xyz\r\n\xff\xfe", content_type=content_type)
            status = await raw(c.url, body)
            assert status in REFUSED, (content_type, status)


async def test_odd_csrf_values_and_session_ids_are_refused_when_signed_in(store: Store) -> None:
    await store.record_intake([accepted("m1")])
    async with console(store) as c, signed_in(c.url, "ada") as s:
        cookie = (
            b"Cookie: cb_session="
            + next(m.value for m in s.cookie_jar if m.key == "cb_session").encode()
        )
        for value in ODD:
            for request in (
                post("/messages/1/replay", b"csrf=" + value, cookie),
                post("/messages/1/replay", b"", cookie, b"X-CSRF-Token: " + value),
                post("/sessions/1/revoke", b"csrf=" + value, cookie),
                post("/logout", b"csrf=" + value, cookie),
            ):
                status = await raw(c.url, request)
                assert status in REFUSED, (request, status)
        async with s.get("/dashboard") as r:
            page = await r.text()
        csrf = page.split('name="csrf" value="')[1].split('"')[0].encode()
        for path in ("/sessions/99999999999999999999999/revoke", "/sessions/revoke-user"):
            status = await raw(c.url, post(path, b"csrf=" + csrf + b"&user=", cookie))
            assert status == 400, (path, status)
        garbage = post("/messages/1/replay", b"--xyz\r\n\xff", cookie,
                       content_type=b"multipart/form-data; boundary=xyz")  # fmt: skip
        assert await raw(c.url, garbage) in REFUSED
