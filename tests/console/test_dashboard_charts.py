"""The dashboard's charts: the series read from the store (messages per minute by source,
deliveries and dead letters per hour, latency p50/p99), drawn as inline SVG, refreshed by a
same-origin script the CSP allows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from engine.store import AttemptRecord, DeadLettered, Delivered, Store
from engine.store.console_charts import (
    delivery_counts,
    delivery_latency,
    message_rates,
    percentile,
)
from tests.console.seed import LEASE, accepted
from tests.console.web import console, signed_in

pytestmark = pytest.mark.integration


async def seed_traffic(store: Store) -> datetime:
    """Three messages two minutes ago (two sources); each delivery 4 s after it was queued,
    except the team's third, dead-lettered."""
    now = datetime.now(UTC)
    at = now - timedelta(minutes=2)
    await store.record_intake([
        accepted("r1", "nhs:9990000018", at=at),
        accepted("r2", "nhs:9990000026", at=at + timedelta(seconds=1)),
        accepted("r3", "nhs:9990000034", source="acute", at=at + timedelta(seconds=2)),
    ])  # fmt: skip
    later = datetime.now(UTC)
    claimed = await store.claim_due(["gp", "team"], limit=10, lease=LEASE, owner="t", now=later)
    for n, c in enumerate(claimed):  # attempts in different seconds: each bucket sums them
        tried = later - timedelta(seconds=n)
        if c.destination == "team" and c.event_id == "ev-r3":
            await store.finish_delivery(c, [AttemptRecord(tried, 5, "permanent", 422, "no")],
                                        DeadLettered("refused: HTTP 422"))  # fmt: skip
        else:
            done = c.created_at + timedelta(seconds=4)
            await store.finish_delivery(c, [AttemptRecord(tried, 5, "delivered", 200, "ok")],
                                        Delivered(done))  # fmt: skip
    return later


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(100, 0, -1)]
    assert (percentile(values, 50), percentile(values, 99), percentile([], 50)) == (50, 99, None)


async def test_the_series_count_what_happened(store: Store) -> None:
    now = await seed_traffic(store)
    rates = await message_rates(store, now, timedelta(hours=1))
    by_source = {s.name: s.values for s in rates.series}
    assert len(by_source["mh-trust"]) == 60
    assert sum(v or 0 for v in by_source["mh-trust"]) == 2
    assert sum(v or 0 for v in by_source["acute"]) == 1
    day = await message_rates(store, now, timedelta(hours=24))
    assert len(day.series[0].values) == 96  # 15-minute buckets, as a per-minute rate
    assert sum(v or 0 for v in day.series[0].values) == pytest.approx(1 / 15)
    counts = {s.name: s.values for s in (await delivery_counts(store, now)).series}
    assert sum(v or 0 for v in counts["delivered"]) == 5
    assert sum(v or 0 for v in counts["dead-lettered"]) == 1
    assert counts["delivered"][0] == 0
    latency = {s.name: s.values for s in (await delivery_latency(store, now)).series}
    assert {v for v in latency["p50"] + latency["p99"] if v is not None} == {4.0}
    assert latency["p50"][0] is None


async def test_the_dashboard_draws_svg_and_serves_its_refresh_script(store: Store) -> None:
    await seed_traffic(store)
    async with console(store) as c:
        async with signed_in(c.url, "vera") as s:
            async with s.get("/dashboard") as r:
                page = await r.text()
                csp = r.headers["Content-Security-Policy"]
            async with s.get("/dashboard/charts?span=24h") as r:
                fragment = await r.text()
        async with (
            aiohttp.ClientSession(base_url=c.url) as plain,
            plain.get("/static/console.js") as r,
        ):
            script = await r.text()
            assert r.headers["Content-Type"].startswith("text/javascript")
    for chart in ("chart-rates", "chart-deliveries", "chart-latency", "chart-backlog"):
        assert f'<svg id="{chart}"' in page
        assert f'<svg id="{chart}"' in fragment
    assert '<script src="/static/console.js" defer></script>' in page
    assert 'data-src="/dashboard/charts?span=1h"' in page
    assert "<html" not in fragment
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "<polyline" in page
    assert ">acute</text>" in page
    assert ">dead-lettered</text>" in page
    assert "setInterval(refresh" in script
    assert "GMT" in page or "BST" in page
