"""The journey, follow-ups and dashboard pages in a real headless Chromium: each renders, the
journey is reached from a message page's patient link, the dashboard's charts are refreshed in
place by its script under the console's CSP (no reload), and a screenshot of each page is kept
under the test's tmp dir (paths printed). Skipped without Chromium, chromedriver or Selenium."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from engine.console.routes import overview
from engine.store import Store
from tests.console.journey_seed import seed_journey
from tests.console.test_browser import act, browser, settle, sign_in
from tests.console.test_dashboard_charts import seed_traffic
from tests.console.test_follow_ups_page import seed_states
from tests.console.web import console

By = pytest.importorskip("selenium.webdriver.common.by").By
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not (shutil.which("chromium") and shutil.which("chromedriver")),
        reason="needs Debian's chromium and chromium-driver",
    ),
]


def shoot(driver: Any, where: Path, name: str) -> Path:
    """A full-width screenshot of the current page, kept as a test artefact."""
    driver.set_window_size(1400, 1000)
    path = where / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"no screenshot of {name}"
    print(f"screenshot: {path}")
    return path


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
async def test_journey_follow_ups_and_dashboard_in_chromium(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed_journey(store)
    await seed_states(store)
    await seed_traffic(store)
    monkeypatch.setattr(overview, "CHART_REFRESH", 5)  # the script's floor: a quick refresh
    by = By
    async with console(store) as c, browser() as driver:
        await act(lambda: sign_in(driver, c.url, "clara"))

        def journey() -> str:
            driver.get(f"{c.url}/messages/1")
            driver.find_element(by.CSS_SELECTOR, "table.facts a.journey").click()
            settle(driver, "/patients?patient=")
            shoot(driver, tmp_path, "journey")
            return str(driver.find_element(by.ID, "journey-summary").text)

        assert "4 with gaps" in await act(journey)

        def follow_ups() -> list[str]:
            driver.find_element(by.LINK_TEXT, "Follow-ups").click()
            settle(driver, "/follow-ups")
            shoot(driver, tmp_path, "follow-ups")
            return [e.text for e in driver.find_elements(by.CSS_SELECTOR, "table.teams td")]

        assert await act(follow_ups) == [
            "(no recipient known)", "1", "0", "0", "0", "0",  # the journey's discharge
            "east-team", "1", "1", "0", "0", "0",
            "west-team", "0", "0", "1", "1", "1",
        ]  # fmt: skip  # fmt: skip

        def dashboard() -> tuple[int, str | None]:
            driver.get(f"{c.url}/dashboard")
            settle(driver, "/dashboard")
            driver.execute_script("window.notReloaded = true;")
            charts = len(driver.find_elements(by.CSS_SELECTOR, "#charts svg"))
            box = driver.find_element(by.ID, "charts")
            settle_refresh(driver, box)
            shoot(driver, tmp_path, "dashboard")
            kept = driver.execute_script("return window.notReloaded === true;")
            assert kept, "the page reloaded instead of refreshing its charts"
            return charts, box.get_attribute("data-refreshed")

        charts, refreshed = await act(dashboard)
        assert charts == 4
        assert refreshed
        errors = await act(lambda: driver.get_log("browser"))
        assert not [e for e in errors if "Content Security Policy" in e.get("message", "")]
    for name in ("journey", "follow-ups", "dashboard"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000


def settle_refresh(driver: Any, box: Any, deadline: float = 60.0) -> None:
    """Wait for the script to have refetched the charts at least once."""
    import time

    end = time.monotonic() + deadline
    while not box.get_attribute("data-refreshed"):
        if time.monotonic() > end:
            raise AssertionError("the charts were never refreshed")
        time.sleep(0.2)
