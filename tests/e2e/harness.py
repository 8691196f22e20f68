"""End-to-end harness: the engine as a real subprocess, a real broker, a recording receiver."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pika
from aiohttp import web

from adapters.rabbitmq import AmqpSettings, Broker
from engine.config import parse_env_file
from tests.conftest import AMQP_URL

CAREBRIDGE = Path(sys.executable).with_name("carebridge")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_until(
    condition: Callable[[], bool], *, deadline: float = 120.0, what: str = "condition"
) -> None:
    """Poll `condition` until it holds; fail with `what` after `deadline` seconds."""
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {deadline:g}s waiting for {what}")
        await asyncio.sleep(0.05)


@dataclass
class Receipt:
    key: str
    event: dict[str, Any]


@dataclass
class Receiver:
    """An idempotent webhook receiver: applies each Idempotency-Key once, counts repeats."""

    receipts: list[Receipt] = field(default_factory=list)
    applied: dict[str, Receipt] = field(default_factory=dict)
    repeats: int = 0
    answer: Callable[[dict[str, Any]], int] = lambda _event: 200
    delay: float = 0.0
    """Seconds each request takes: deliveries stay in flight that long."""
    started: int = 0
    url: str = ""
    _runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        key = request.headers["Idempotency-Key"]
        event = json.loads(await request.read())
        self.started += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        status = self.answer(event)
        if status != 200:
            return web.Response(status=status, text="refused by test receiver")
        receipt = Receipt(key, event)
        self.receipts.append(receipt)
        if key in self.applied:
            self.repeats += 1
        else:
            self.applied[key] = receipt
        return web.Response(status=200, text="ok")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/events", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/events"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def applied_order(self) -> list[Receipt]:
        return list(self.applied.values())


def write_config(path: Path, text: str, env: Mapping[str, str]) -> Path:
    """Write a config file, and beside it (``<name>.env``) the environment variables it takes
    its credentials from: a config file holds none (the broker URL carries a password), and
    `EngineProcess.start` passes them to the engine."""
    path.write_text(text)
    path.with_suffix(".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    return path


def config_env(config: Path) -> dict[str, str]:
    """The variables written beside `config` by `write_config` (none if there are none)."""
    beside = config.with_suffix(".env")
    return parse_env_file(beside.read_text(), str(beside)) if beside.exists() else {}


def engine_config(
    tmp: Path,
    sources: list[str],
    receiver_url: str,
    *,
    http_port: int,
    extra: str = "",
    store_url: str | None = None,
) -> Path:
    sqlite_url = f"sqlite+aiosqlite:///{tmp / 'carebridge.db'}"
    source_lines = "\n".join(f"  - {{name: {s}, care_setting: mental_health}}" for s in sources)
    text = f"""
amqp: {{url: "${{CB_TEST_AMQP_URL}}", prefetch: 200}}
store: {{url: "${{CB_TEST_STORE_URL}}"}}
http: {{host: 127.0.0.1, port: {http_port}}}
delivery: {{poll_interval: 200ms, lease: 30s}}
retry_policies:
  default: {{quick_attempts: 2, quick_wait: 50ms, initial_backoff: 200ms, max_backoff: 2s,
            max_age: 10m}}
sources:
{source_lines}
destinations:
  - {{name: receiver, type: webhook, url: "{receiver_url}", timeout: 5s, allow_plain_http: true}}
routes:
  - {{name: all, to: [receiver]}}
{extra}
"""
    env = {"CB_TEST_AMQP_URL": AMQP_URL, "CB_TEST_STORE_URL": store_url or sqlite_url}
    return write_config(tmp / "carebridge.yaml", text, env)


@dataclass
class EngineProcess:
    config: Path
    http_port: int
    log_path: Path
    process: asyncio.subprocess.Process | None = None
    runs: list[Path] = field(default_factory=list)
    killed: set[Path] = field(default_factory=set)

    async def start(self, *, env: dict[str, str] | None = None) -> None:
        """Start the engine; each start logs to a file of its own."""
        path = self.log_path.with_name(f"{self.log_path.stem}-{len(self.runs) + 1}.log")
        self.runs.append(path)
        log = path.open("ab")
        self.process = await asyncio.create_subprocess_exec(
            str(CAREBRIDGE), "run", "-c", str(self.config),
            stdout=log, stderr=log, env={**os.environ, **config_env(self.config), **(env or {})},
        )  # fmt: skip
        log.close()
        await self.wait_ready()

    async def wait_ready(self, deadline: float = 60.0) -> None:
        end = time.monotonic() + deadline
        url = f"http://127.0.0.1:{self.http_port}/readyz"
        async with aiohttp.ClientSession() as session:
            while True:
                assert self.process is not None
                if self.process.returncode is not None:
                    raise AssertionError(
                        f"engine exited with {self.process.returncode}:\n{self.tail()}"
                    )
                try:
                    async with session.get(url) as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > end:
                    raise AssertionError(f"engine not ready in time:\n{self.tail()}")
                await asyncio.sleep(0.1)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.killed.add(self.runs[-1])

    async def terminate(self, deadline: float = 30.0) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), deadline)

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_lines()[-lines:])

    def log_lines(self) -> list[str]:
        """Every complete log line of every run (a SIGKILL may cut a run's last line short)."""
        lines: list[str] = []
        for path in self.runs:
            text = path.read_text(errors="replace") if path.exists() else ""
            if path in self.killed and not text.endswith("\n"):
                text = text.rsplit("\n", 1)[0]
            lines += text.splitlines()
        return lines


async def publish_all(source: str, messages: list[bytes]) -> None:
    """Publish to the inbound exchange with confirms, many in flight at once."""
    async with Broker(AmqpSettings(url=AMQP_URL, connection_name="e2e-sender")) as broker:
        for start in range(0, len(messages), 100):
            await asyncio.gather(*(
                broker.publish("carebridge.inbound", source, body, message_id=str(uuid.uuid4()))
                for body in messages[start : start + 100]
            ))  # fmt: skip


def delete_queues(names: list[str]) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        channel = connection.channel()
        for name in names:
            channel.queue_delete(name)
    finally:
        connection.close()


Publisher = Callable[[str, list[bytes]], Awaitable[None]]
