"""The container runs what the tests run: its config, entrypoint and health check are exercised
here on the real broker, since no Docker engine runs on the test machines."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pika
import pytest
import yaml

from mappings.profile import event_id
from tests.adt_factory import adt, patients
from tests.conftest import AMQP_URL
from tests.e2e.harness import EngineProcess, free_port, publish_all, wait_until

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO / "docker" / "Dockerfile").read_text()
CONTAINER_CONFIG = REPO / "docker" / "carebridge.yaml"


def test_image_runs_the_config_it_ships_as_a_non_root_user() -> None:
    cmd = re.search(r'^CMD \["run", "-c", "([^"]+)"\]', DOCKERFILE, re.M)
    assert cmd is not None
    assert f"COPY docker/carebridge.yaml {cmd.group(1)}" in DOCKERFILE
    assert re.search(r'^ENTRYPOINT \["carebridge"\]', DOCKERFILE, re.M)
    user = re.search(r"^USER (\S+)", DOCKERFILE, re.M)
    assert user is not None
    assert user.group(1) not in {"root", "0"}


def test_health_check_probes_readyz_on_the_configured_port() -> None:
    config = yaml.safe_load(CONTAINER_CONFIG.read_text())
    port = re.fullmatch(r"\$\{CAREBRIDGE_HTTP_PORT:-(\d+)\}", config["http"]["port"])
    assert port is not None
    assert f"http://127.0.0.1:{port.group(1)}/readyz" in DOCKERFILE
    assert f"EXPOSE {port.group(1)}" in DOCKERFILE


def test_compose_sets_every_variable_the_container_config_needs() -> None:
    compose = yaml.safe_load((REPO / "docker" / "compose.yaml").read_text())
    environment = compose["services"]["carebridge"]["environment"]
    needed = set(re.findall(r"\$\{([A-Z_]+)\}", CONTAINER_CONFIG.read_text()))
    assert needed <= set(environment)
    assert compose["services"]["rabbitmq"]["image"].startswith("rabbitmq:4")


def test_compose_publishes_no_management_port_and_has_no_default_password() -> None:
    compose = yaml.safe_load((REPO / "docker" / "compose.yaml").read_text())
    published = [str(port).rsplit(":", 1)[-1] for service in compose["services"].values()
                 for port in service.get("ports", [])]  # fmt: skip
    assert not {"15672", "15671"} & set(published), published
    rabbitmq = compose["services"]["rabbitmq"]["environment"]
    engine = compose["services"]["carebridge"]["environment"]
    # ${NAME:?message}: compose refuses to start without it, so no password is ever a default.
    required = "${CAREBRIDGE_RABBITMQ_PASSWORD:?"
    assert rabbitmq["RABBITMQ_DEFAULT_PASS"].startswith(required)
    assert required in engine["CAREBRIDGE_AMQP_URL"]
    assert not re.search(r"PASSWORD:-", (REPO / "docker" / "compose.yaml").read_text())


@pytest.fixture
def events_queue() -> Iterator[tuple[pika.adapters.blocking_connection.BlockingChannel, str]]:
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()
    channel.exchange_declare("carebridge.events", "topic", durable=True)
    name = f"test-subscriber-{uuid.uuid4().hex[:8]}"
    channel.queue_declare(name, exclusive=True)
    channel.queue_bind(name, "carebridge.events", "discharge.mental_health.#")
    yield channel, name
    connection.close()


@pytest.mark.integration
async def test_container_config_carries_a_discharge_to_event_subscribers(
    tmp_path: Path, events_queue: tuple[pika.adapters.blocking_connection.BlockingChannel, str]
) -> None:
    channel, queue = events_queue
    port = free_port()
    engine = EngineProcess(CONTAINER_CONFIG, port, tmp_path / "engine.log")
    await engine.start(env={
        "CAREBRIDGE_AMQP_URL": AMQP_URL,
        "CAREBRIDGE_STORE_URL": f"sqlite+aiosqlite:///{tmp_path / 'carebridge.db'}",
        "CAREBRIDGE_HTTP_PORT": str(port),
    })  # fmt: skip
    try:
        control_id = f"container-{uuid.uuid4().hex[:8]}"
        [patient] = patients(1, run="C")
        await publish_all("mh-trust", [adt("A03", patient, control_id, datetime.now(UTC))])
        wanted = event_id("mh-trust", control_id)
        seen: list[dict[str, object]] = []

        def arrived() -> bool:
            method, _props, body = channel.basic_get(queue, auto_ack=True)
            if method is not None:
                seen.append(json.loads(body))
            return any(e["event_id"] == wanted for e in seen)

        await wait_until(arrived, deadline=60, what="the discharge on carebridge.events")
        [event] = [e for e in seen if e["event_id"] == wanted]
        assert event["kind"] == "discharge"
    finally:
        assert await engine.terminate() == 0
