"""The acknowledgement page in a real headless Chromium: the link's fragment becomes the form's
token (the address bar loses it), a name is typed, and the follow-up is done. Skipped when
Chromium, chromedriver or Selenium is not installed."""

from __future__ import annotations

import time
from typing import Any

import pytest
import sqlalchemy as sa

from engine.store import Store
from engine.store.schema import follow_ups
from tests.integration.test_ack_pages import DONE, Pages, pages  # noqa: F401 - the fixture

webdriver = pytest.importorskip("selenium.webdriver")
By = pytest.importorskip("selenium.webdriver.common.by").By
from tests.console.test_browser import act, browser, pytestmark  # noqa: E402, F401


def done_on_the_page(driver: Any, link: str) -> str:
    driver.get(link)
    token = driver.find_element(By.ID, "token")
    assert not driver.find_element(By.ID, "code").is_displayed()  # the script filled it
    assert token.get_attribute("value") == DONE
    assert "#" not in driver.current_url  # the token left the address bar and history
    driver.find_element(By.NAME, "by").send_keys("Dr Lee")
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    end = time.monotonic() + 30
    while "Follow-up recorded as done" not in driver.page_source:
        assert time.monotonic() < end, driver.page_source
        time.sleep(0.05)
    return str(driver.page_source)


async def test_the_page_reads_the_token_from_the_fragment_and_records_done(
    store: Store,
    pages: Pages,  # noqa: F811
) -> None:
    async with browser() as driver:
        await act(lambda: done_on_the_page(driver, pages.link("done") + "#" + DONE))
    async with store.reading() as conn:
        query = sa.select(follow_ups.c.status, follow_ups.c.done_by)
        row = (await conn.execute(query.where(follow_ups.c.event_id == pages.event_id))).one()
    assert (row.status, row.done_by) == ("done", "Dr Lee")
