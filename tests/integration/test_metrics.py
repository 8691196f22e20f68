"""The engine's own Prometheus metrics move as it works: attempts by outcome, intake to
delivery, and discharge to clinician notification (delivery loop on both real stores against a
real HTTP receiver); and a running engine serves them, with the process collector, on the
console's /metrics."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from prometheus_client import REGISTRY

from adapters.webhook import WebhookClient
from engine.config import DeliveryConfig, WebhookDestination
from engine.delivery.loop import DeliveryLoop
from engine.delivery.webhook import WebhookSender
from engine.store import Store
from tests.adt_factory import adt, patients
from tests.e2e.harness import (
    EngineProcess,
    Receiver,
    engine_config,
    free_port,
    publish_all,
    wait_until,
)
from tests.integration.test_delivery import FAST, Destination, destination, enqueue, statuses

pytestmark = pytest.mark.integration
__all__ = ["destination"]  # the fixture, used by name


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def figures() -> dict[str, float]:
    attempts = "carebridge_delivery_attempts_total"
    return {
        "transient": sample(attempts, destination="dest", outcome="transient"),
        "delivered": sample(attempts, destination="dest", outcome="delivered"),
        "latency": sample("carebridge_intake_to_delivery_seconds_count", destination="dest"),
        "notified": sample(
            "carebridge_discharge_to_notification_seconds_count", destination="dest"
        ),
    }


async def test_delivery_metrics_follow_attempts_and_latency(
    store: Store, destination: Destination
) -> None:
    answers = iter([503])
    destination.answer = lambda _hit: next(answers, 200)
    before = figures()
    for seq in range(3):
        await enqueue(store, f"p{seq}", seq)
    client = await WebhookClient().__aenter__()
    config = WebhookDestination(
        type="webhook", name="dest", url=destination.url, allow_plain_http=True
    )
    loop = DeliveryLoop(
        store, {"dest": WebhookSender(config, client.post)}, {"dest": FAST}, {"dest": False},
        DeliveryConfig(concurrency=8, poll_interval=timedelta(milliseconds=50)),
        notifications=frozenset({"dest"}),
    )  # fmt: skip
    task = asyncio.create_task(loop.run())
    try:
        await wait_until(lambda: len(destination.hits) >= 4, what="three deliveries, one retried")
        await wait_until(
            lambda: (
                sample("carebridge_intake_to_delivery_seconds_count", destination="dest")
                >= before["latency"] + 3
            ),
            what="three deliveries measured",
        )
    finally:
        loop.stop()
        await task
        await loop.drain(5)
        await client.close()
    assert set((await statuses(store)).values()) == {"delivered"}
    got = figures()
    assert {k: got[k] - before[k] for k in got} == {
        "transient": 1, "delivered": 3, "latency": 3, "notified": 3,
    }  # fmt: skip
    assert sample("carebridge_deliveries_in_flight", destination="dest") == 0


async def test_a_running_engine_serves_its_metrics_on_the_console(tmp_path: Path) -> None:
    receiver = Receiver()
    await receiver.start()
    source = f"metrics-{free_port()}"
    http, console = free_port(), free_port()
    token = "m" * 40
    extra = f"""
console:
  port: {console}
  session_secret: ${{SESSION}}
  tokens: [{{name: prometheus, role: viewer, token: "${{METRICS_TOKEN}}"}}]
"""
    config = engine_config(tmp_path, [source], receiver.url, http_port=http, extra=extra)
    engine = EngineProcess(config, http, tmp_path / "engine.log")
    await engine.start(env={"SESSION": "s" * 40, "METRICS_TOKEN": token})
    try:
        people = patients(3, run="M")
        await publish_all(source, [adt("A03", p, f"M{i}", _now()) for i, p in enumerate(people)])
        await wait_until(lambda: len(receiver.receipts) >= 3, what="three deliveries")
        url = f"http://127.0.0.1:{console}/metrics"
        headers = {"Authorization": f"Bearer {token}"}
        delivered = 'carebridge_intake_to_delivery_seconds_count{destination="receiver"} 3.0'
        text = ""
        deadline = time.monotonic() + 30
        # the receiver has the request before the engine has recorded (and measured) it
        while delivered not in text and time.monotonic() < deadline:
            async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as got:
                assert got.status == 200
                text = await got.text()
            await asyncio.sleep(0.2)
    finally:
        await engine.terminate()
        await receiver.stop()
    assert f'carebridge_intake_messages_total{{source="{source}",status="accepted"}} 3.0' in text
    assert 'carebridge_intake_to_delivery_seconds_count{destination="receiver"} 3.0' in text
    assert "process_resident_memory_bytes" in text
    assert "carebridge_intake_waiting_messages " in text
    assert "carebridge_deliveries{" in text  # the store's figures too


def _now() -> datetime:
    return datetime.now(UTC)


def test_the_grafana_dashboard_reads_only_metrics_the_engine_serves() -> None:
    import json
    import re

    from engine import metrics

    root = Path(__file__).resolve().parents[2]
    dashboard = json.loads((root / "docker" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"\b((?:carebridge|process)_[a-z_]+)", e)}
    suffixes = ("", "_total", "_bucket", "_count", "_sum", "_created")
    families = {f.name for f in REGISTRY.collect()}
    store_figures = re.findall(
        r'"(carebridge_[a-z_]+)"', (root / "engine/console/metrics.py").read_text()
    )
    served = {name + s for name in families for s in suffixes} | set(store_figures)
    assert metrics.INTAKE is not None
    assert used - served == set()
    assert len(dashboard["panels"]) >= 8
