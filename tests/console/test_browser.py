"""The console in a real headless Chromium (Selenium): sign in, search a patient, open a
message, replay a dead letter and see it delivered by the real delivery loop, be refused as a
viewer. Skipped when Chromium, chromedriver or Selenium is not installed."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from engine.config import DeliveryConfig, RetryPolicy
from engine.delivery.loop import DeliveryLoop
from engine.delivery.sending import SendResult
from engine.store import ClaimedDelivery, Store
from tests.console.seed import NHS, accepted, deliver_all
from tests.console.web import PASSWORD, console

webdriver = pytest.importorskip("selenium.webdriver")
By = pytest.importorskip("selenium.webdriver.common.by").By
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not (shutil.which("chromium") and shutil.which("chromedriver")),
        reason="needs Debian's chromium and chromium-driver",
    ),
]


class Accepting:
    async def send(self, delivery: ClaimedDelivery) -> SendResult:
        return SendResult("delivered", 200, "ok")


def _chromium() -> Any:
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tempfile.mkdtemp(prefix='cb-chromium-')}",
    ):
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
    return webdriver.Chrome(options=options, service=service)


@asynccontextmanager
async def browser() -> AsyncIterator[Any]:
    driver = await asyncio.to_thread(_chromium)
    try:
        yield driver
    finally:
        await asyncio.to_thread(driver.quit)


async def act(step: Callable[[], Any]) -> Any:
    """Selenium blocks: run each step off the event loop the console serves on."""
    return await asyncio.to_thread(step)


def sign_in(driver: Any, url: str, user: str) -> None:
    by = By
    driver.delete_all_cookies()
    driver.get(f"{url}/login")
    driver.find_element(by.ID, "name").send_keys(user)
    driver.find_element(by.ID, "password").send_keys(PASSWORD)
    driver.find_element(by.ID, "sign-in").click()
    settle(driver, "/messages")


def settle(driver: Any, url_part: str, deadline: float = 30.0) -> None:
    """Wait for the navigation a click started to land on a URL containing `url_part`."""
    end = time.monotonic() + deadline
    while (
        url_part not in driver.current_url
        or driver.execute_script("return document.readyState") != "complete"
    ):
        if time.monotonic() > end:
            raise AssertionError(f"never reached {url_part}: at {driver.current_url}")
        time.sleep(0.05)


def wait_for_text(driver: Any, path: str, text: str, deadline: float = 30.0) -> None:
    end = time.monotonic() + deadline
    while True:
        driver.get(path)
        if text in driver.page_source:
            return
        if time.monotonic() > end:
            raise AssertionError(f"{text!r} never appeared at {path}")
        time.sleep(0.2)


async def test_operator_signs_in_searches_opens_replays_and_a_viewer_is_refused(
    store: Store,
) -> None:
    await store.record_intake(
        [
            accepted("m1", destinations=("team",)),
            accepted("m2", "nhs:9000000009", destinations=("team",)),
        ]
    )
    await deliver_all(store, dead=frozenset({"team"}))
    loop = DeliveryLoop(
        store,
        {"team": Accepting()},
        {"team": RetryPolicy()},
        {"team": False},
        DeliveryConfig(poll_interval=60),
    )
    by = By
    async with console(store, on_replay=loop.wake) as c, browser() as driver:
        running = asyncio.create_task(loop.run())
        try:
            await act(lambda: sign_in(driver, c.url, "olive"))
            assert "Messages" in await act(lambda: driver.title)

            def search() -> list[str]:
                driver.find_element(by.ID, "f-patient").send_keys(NHS[:3] + " " + NHS[3:])
                driver.find_element(by.ID, "f-reason").send_keys("discharge query")
                driver.find_element(by.ID, "search-go").click()
                settle(driver, "patient=")
                return [a.text for a in driver.find_elements(by.CSS_SELECTOR, "table.results a")]

            assert await act(search) == ["1"]

            def open_and_replay() -> str:
                driver.find_element(by.LINK_TEXT, "1").click()
                settle(driver, "/messages/1")
                assert "PID|1||" + NHS in driver.find_element(by.ID, "payload").text
                section = driver.find_element(by.CSS_SELECTOR, "section.delivery")
                assert section.find_element(by.CLASS_NAME, "state").text == "dead"
                section.find_element(by.CSS_SELECTOR, "input[name=comment]").send_keys("retry")
                section.find_element(by.XPATH, ".//button[text()='Replay']").click()
                settle(driver, "done=")
                return str(driver.find_element(by.ID, "notice").text)

            assert "Replayed: 1" in await act(open_and_replay)
            await act(
                lambda: wait_for_text(driver, f"{c.url}/messages/1", 'class="state">delivered<')
            )

            def as_viewer() -> tuple[str, str]:
                sign_in(driver, c.url, "vera")
                driver.get(f"{c.url}/messages?patient={NHS}")
                refused = driver.find_element(by.ID, "refused").text
                driver.get(f"{c.url}/messages/1")
                return refused, driver.page_source

            refused, page = await act(as_viewer)
            assert "cannot do this" in refused
            assert NHS not in page
            assert "Replay" not in page
        finally:
            loop.stop()
            await running
