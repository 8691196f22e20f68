"""A real engine for the API tests: `carebridge run` as a subprocess on the real RabbitMQ and a
SQLite store, with the FHIR intake, the follow-up list and a notification destination, so
every documented route has a handler behind it. Synchronous: schemathesis calls with requests."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.harness import CAREBRIDGE, config_env, delete_queues, engine_config, free_port

FHIR_TOKEN = "api-fhir-token-for-tests-" + "f" * 16
LIST_TOKEN = "api-list-token-for-tests-" + "l" * 16
DESTINATION = "clinicians"


@dataclass(frozen=True)
class Running:
    source: str
    fhir_url: str
    http_url: str
    log: Path


def _config(tmp: Path, source: str, http_port: int, fhir_port: int) -> Path:
    nowhere = f"http://127.0.0.1:{free_port()}/events"  # deliveries wait and retry: not tested
    config = engine_config(tmp, [source], nowhere, http_port=http_port)
    text = config.read_text().replace(
        f"  - {{name: {source}, care_setting: mental_health}}",
        f"  - {{name: {source}, care_setting: mental_health, "
        "fhir: {tokens: ['${CB_TEST_FHIR_TOKEN}']}}",
    )
    notification = f"""
  - name: {DESTINATION}
    type: notification
    allow_plain_http: true
    ack_base_url: http://127.0.0.1:{http_port}
    recipients:
      - {{name: community-mh-team, url: "{nowhere}"}}
"""
    text = text.replace("routes:", notification.rstrip() + "\nroutes:")
    text += f"""fhir_http: {{host: 127.0.0.1, port: {fhir_port}}}
follow_up: {{list_token: "${{CB_TEST_LIST_TOKEN}}"}}
"""
    config.write_text(text)
    return config


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as answer:
            return bool(answer.status == 200)
    except (OSError, urllib.error.URLError):
        return False


@contextmanager
def running_engine(tmp: Path, source: str, deadline: float = 60.0) -> Iterator[Running]:
    """The engine with the FHIR source `source`, ready (``/readyz`` 200); SIGTERM after."""
    http_port, fhir_port = free_port(), free_port()
    config = _config(tmp, source, http_port, fhir_port)
    env = {**os.environ, **config_env(config), "CB_TEST_FHIR_TOKEN": FHIR_TOKEN,
           "CB_TEST_LIST_TOKEN": LIST_TOKEN}  # fmt: skip
    log = tmp / "engine.log"
    with log.open("ab") as out:
        process = subprocess.Popen([str(CAREBRIDGE), "run", "-c", str(config)], stdout=out,
                                   stderr=out, env=env)  # fmt: skip
    running = Running(source, f"http://127.0.0.1:{fhir_port}", f"http://127.0.0.1:{http_port}",
                      log)  # fmt: skip
    try:
        end = time.monotonic() + deadline
        while not _ready(running.http_url):
            if process.poll() is not None or time.monotonic() > end:
                raise AssertionError(f"engine not ready:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        delete_queues([f"carebridge.inbound.{source}"])
