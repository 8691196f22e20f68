"""Security headers on every answer of every HTTP listener: pages, API answers, raised errors
(401, 403, 404, 405, 413, 415, 500) and redirects alike, and HSTS whenever the listener is
behind TLS (its own, or a TLS-terminating proxy's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.http.fhir import AUTHORISED
from tests.http.listeners import CONSOLE_TOKEN, LIST_TOKEN, LISTENERS, listening
from tests.http.wire import Answer, ask, head

BEARER = {"Authorization": f"Bearer {CONSOLE_TOKEN}"}
BIG = "70000"  # over the console's and the health port's 64 KiB, and the test FHIR limit

# (listener, why, raw request, expected status)
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
EMPTY = {"Content-Length": "0"}
CASES: list[tuple[str, str, bytes, int]] = [
    ("health", "alive", head("GET", "/healthz"), 200),
    ("health", "ready", head("GET", "/readyz"), 200),
    ("health", "no such page", head("GET", "/nope"), 404),
    ("health", "wrong method", head("POST", "/healthz", EMPTY), 405),
    ("health", "bad ack link", head("GET", "/notifications/gp/ev-1?token=nope"), 403),
    ("health", "follow-ups without token", head("GET", "/follow-ups"), 401),
    (
        "health",
        "follow-ups",
        head("GET", "/follow-ups", {"Authorization": f"Bearer {LIST_TOKEN}"}),
        200,
    ),
    ("console", "sign-in page", head("GET", "/login", {"Accept": "text/html"}), 200),
    ("console", "style sheet", head("GET", "/static/console.css"), 200),
    ("console", "redirect to sign in", head("GET", "/", {"Accept": "text/html"}), 303),
    ("console", "script without token", head("GET", "/messages"), 401),
    ("console", "no such page", head("GET", "/nope", BEARER), 404),
    ("console", "wrong method", head("PUT", "/messages", {**BEARER, **EMPTY}), 405),
    (
        "console",
        "too big a form",
        head("POST", "/login", {**FORM, "Content-Length": BIG}) + b"x" * 70000,
        413,
    ),
    ("console", "dashboard", head("GET", "/dashboard", BEARER), 200),
    ("fhir", "no such source", head("POST", "/fhir/nope", {**AUTHORISED, **EMPTY}), 404),
    ("fhir", "wrong token", head("POST", "/fhir/mh", EMPTY), 401),
    ("fhir", "wrong method", head("GET", "/fhir/mh"), 405),
    ("fhir", "no such page", head("GET", "/"), 404),
    ("fhir", "too big", head("POST", "/fhir/mh", {**AUTHORISED, "Content-Length": BIG}), 413),
    (
        "fhir",
        "wrong media type",
        head("POST", "/fhir/mh", {**AUTHORISED, **EMPTY, "Content-Type": "text/plain"}),
        415,
    ),
    (
        "fhir",
        "not FHIR",
        head("POST", "/fhir/mh", {**AUTHORISED, "Content-Length": "2"}) + b"{}",
        422,
    ),
]


def assert_guarded(answer: Answer, *, hsts: bool) -> None:
    headers = answer.headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert "default-src 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"
    assert ("strict-transport-security" in headers) is hsts
    if hsts:
        assert headers["strict-transport-security"].startswith("max-age=")


@pytest.mark.parametrize(("name", "why", "raw", "status"), CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in CASES])  # fmt: skip
async def test_every_answer_carries_the_security_headers(
    tmp_path: Path, name: str, why: str, raw: bytes, status: int
) -> None:
    async with listening(name, tmp_path) as door:
        answer = await ask(door.port, raw)
    assert answer.status == status, (why, answer.body[:200])
    assert_guarded(answer, hsts=False)


UNPARSABLE = {
    "bad chunk framing": b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "bad request line": b"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
    "bad header": b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: y\r\n\r\n",
}


@pytest.mark.parametrize("name", LISTENERS)
@pytest.mark.parametrize("why", list(UNPARSABLE))
async def test_aiohttps_own_400_for_an_unparsable_request_carries_the_headers(
    tmp_path: Path, name: str, why: str
) -> None:
    """Regression: the 400 aiohttp's parser writes before any route sees the request had none
    of the security headers."""
    async with listening(name, tmp_path) as door:
        answer = await ask(door.port, UNPARSABLE[why])
    assert answer.status == 400, answer.body[:200]
    assert_guarded(answer, hsts=False)


@pytest.mark.parametrize("name", LISTENERS)
async def test_a_failing_handler_is_a_500_with_the_headers(
    tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_args: object) -> object:
        raise RuntimeError("the store broke")

    monkeypatch.setattr("engine.console.routes.overview.figures", broken)
    async with listening(name, tmp_path, broken=True) as door:
        raw = {"health": head("GET", "/readyz"),
               "console": head("GET", "/dashboard", BEARER),
               "fhir": door.good}[name]  # fmt: skip
        answer = await ask(door.port, raw)
    assert answer.status == 500
    assert_guarded(answer, hsts=False)


@pytest.mark.parametrize("name", LISTENERS)
async def test_behind_a_tls_proxy_every_answer_asks_for_https(tmp_path: Path, name: str) -> None:
    async with listening(name, tmp_path, behind_tls_proxy=True) as door:
        good = await ask(door.port, door.good)
        missing = await ask(door.port, head("GET", "/no-such-page"))
    assert good.status == door.good_status
    assert missing.status in (401, 404)
    for answer in (good, missing):
        assert_guarded(answer, hsts=True)


@pytest.mark.parametrize("name", ["console", "fhir"])
async def test_over_tls_every_answer_asks_for_https(tmp_path: Path, name: str) -> None:
    async with listening(name, tmp_path, tls=True) as door:
        good = await ask(door.port, door.good, door.tls)
        missing = await ask(door.port, head("GET", "/no-such-page"), door.tls)
    assert good.status == door.good_status
    for answer in (good, missing):
        assert_guarded(answer, hsts=True)


@pytest.mark.parametrize("value", [b"Bearer \xff\xfe", b"Bearer \xc3\xa9", b"\xff"])
async def test_odd_bytes_in_the_follow_up_lists_token_are_401_not_500(
    tmp_path: Path, value: bytes
) -> None:
    raw = head("GET", "/follow-ups")[:-2] + b"Authorization: " + value + b"\r\n\r\n"
    async with listening("health", tmp_path) as door:
        answer = await ask(door.port, raw)
    assert answer.status == 401
