"""The simulator as a fault harness: a hospital's traffic (`carebridge simulate --verify`) sent
while the engine is killed with SIGKILL mid-stream and started again; the verdict must still be
clean: nothing missing, nothing duplicated beyond its idempotency key, every patient's events in
order, every notification at the right recipient."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tests.conftest import AMQP_URL
from tests.e2e.harness import CAREBRIDGE, EngineProcess, config_env, wait_until
from tests.e2e.test_simulate import ENV, configs, queues  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration


async def test_a_sigkilled_engine_loses_nothing_of_a_simulated_day(
    tmp_path: Path,
    queues: None,  # noqa: F811
) -> None:
    engine_config, simulation, http = configs(tmp_path, via="amqp")
    engine = EngineProcess(engine_config, http, tmp_path / "engine.log")
    await engine.start(env=ENV)
    simulator = await asyncio.create_subprocess_exec(
        str(CAREBRIDGE), "simulate", "-c", str(simulation), "--amqp", AMQP_URL,
        "--patients", "80", "--seed", "21", "--rate", "150", "--timeout", "150", "--verify",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **config_env(simulation), **ENV},
    )  # fmt: skip
    try:
        # kill once part of the traffic is in and some of it delivered
        await wait_until(
            lambda: (
                simulator.returncode is not None  # it failed: its output says why, below
                or engine.runs[0].read_text(errors="replace").count('"delivery.delivered"') >= 20
            ),
            deadline=90,
            what="the first deliveries",
        )
        engine.kill()
        await engine.process.wait()  # type: ignore[union-attr]
        await engine.start(env=ENV)
        out, err = await asyncio.wait_for(simulator.communicate(), 240)
    finally:
        if simulator.returncode is None:
            simulator.kill()
        await engine.terminate()
    text = out.decode()
    assert simulator.returncode == 0, text + err.decode() + engine.tail()
    assert "every destination received exactly what it should" in text
