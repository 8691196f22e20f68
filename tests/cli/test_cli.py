"""The `carebridge` command as a user runs it: exit codes, stdout for results, stderr else."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pika
import pytest

from tests.adt_factory import adt, patients
from tests.conftest import AMQP_URL

REPO = Path(__file__).resolve().parents[2]
CAREBRIDGE = Path(sys.executable).with_name("carebridge")
FIXTURES = REPO / "tests" / "fixtures" / "hl7v2"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CAREBRIDGE), *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )


def test_map_prints_only_the_care_event_json() -> None:
    result = run("map", str(FIXTURES / "mh_a03_discharge.hl7"))
    assert result.returncode == 0, result.stderr
    event = json.loads(result.stdout)
    assert event["kind"] == "discharge"
    assert event["patient"]["identifiers"][0]["kind"] == "nhs_number"


def test_map_uses_the_sources_profile_from_config(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("sources: [{name: mh-trust, care_setting: mental_health}]\n")
    message = FIXTURES / "acute_a01_lf.hl7"
    result = run("map", str(message), "-c", str(config), "--source", "mh-trust")
    assert result.returncode == 0, result.stderr
    event = json.loads(result.stdout)
    assert event["source"]["feed"] == "mh-trust"
    assert event["stay"]["care_setting"] == "mental_health"


def test_invalid_nhs_number_still_maps_but_never_as_the_nhs_number(tmp_path: Path) -> None:
    [patient] = patients(1)
    broken = replace(patient, nhs_number="9434765918")
    message = tmp_path / "a03.hl7"
    message.write_bytes(adt("A03", broken, "CTRL1", datetime(2026, 5, 1, tzinfo=UTC)))
    result = run("map", str(message))
    assert result.returncode == 0, result.stderr
    event = json.loads(result.stdout)
    kinds = {i["kind"] for i in event["patient"]["identifiers"]}
    assert "nhs_number" not in kinds
    assert "unverified_nhs_number" in kinds
    assert any("modulus-11" in w for w in event["warnings"])


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"hello", "neither HL7v2"),
        (b"", "empty message"),
        (b"MSH|^~\\&|A|B|C|D|20260101||ADT^A17|X1|P|2.4\rEVN|A17|20260101\r", "A17"),
        (b"MSH|^~\\&|A|B|C|D|20260101||ORU^R01|X1|P|2.4\r", "ORU"),
    ],
)
def test_rejected_input_exits_1_with_one_line_reason(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    message = tmp_path / "bad.hl7"
    message.write_bytes(content)
    result = run("map", str(message))
    assert result.returncode == 1
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert reason in result.stderr
    assert "Traceback" not in result.stderr


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert run("map").returncode == 2
    assert run("map", str(tmp_path / "missing.hl7")).returncode == 2
    assert run("frobnicate").returncode == 2
    assert run("map", str(FIXTURES / "mh_a01_admission.hl7"), "--source", "x").returncode == 2


def test_check_config_exit_codes_and_path_reason_lines(tmp_path: Path) -> None:
    good = run("check-config", str(REPO / "docker" / "carebridge.yaml"),
               env={"CAREBRIDGE_AMQP_URL": "amqp://x/", "CAREBRIDGE_STORE_URL":
                    "sqlite+aiosqlite:///x.db", "PATH": "/usr/bin"})  # fmt: skip
    assert good.returncode == 0, good.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources: [{name: Bad Name}]\nrouts: []\n")
    result = run("check-config", str(bad))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert "routs: unknown setting" in lines
    assert any(line.startswith("sources[0].name: String should match pattern") for line in lines)


def test_check_config_reports_a_setting_of_the_wrong_shape_as_path_and_reason(
    tmp_path: Path,
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources: [{name: a}]\ndestinations: 7\n")
    result = run("check-config", str(bad))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["destinations: Input should be a valid list"]


def test_run_with_invalid_config_exits_1_before_starting(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources: []\n")
    result = run("run", "-c", str(bad))
    assert result.returncode == 1
    assert result.stderr.startswith("sources: List should have at least 1 item")


@pytest.mark.integration
def test_send_publishes_to_the_sources_queue_and_refuses_unknown_sources(tmp_path: Path) -> None:
    source = f"cli-{uuid.uuid4().hex[:8]}"
    queue = f"carebridge.inbound.{source}"
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()
    channel.exchange_declare("carebridge.inbound", "direct", durable=True)
    channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    channel.queue_bind(queue, "carebridge.inbound", source)
    try:
        files = [FIXTURES / "mh_a01_admission.hl7", FIXTURES / "mh_a03_discharge.hl7"]
        result = run("send", *map(str, files), "--source", source, "--amqp", AMQP_URL)
        assert result.returncode == 0, result.stderr
        assert result.stdout.count("published") == 2
        assert channel.queue_declare(queue, passive=True).method.message_count == 2
        unknown = run("send", str(files[0]), "--source", f"{source}-nope", "--amqp", AMQP_URL)
        assert unknown.returncode == 1
        assert "no inbound queue for source" in unknown.stderr
    finally:
        channel.queue_delete(queue)
        connection.close()


def test_send_with_broker_down_exits_1() -> None:
    result = run("send", str(FIXTURES / "mh_a01_admission.hl7"), "--source", "x",
                 "--amqp", "amqp://guest:guest@127.0.0.1:1/")  # fmt: skip
    assert result.returncode == 1
    assert "cannot reach RabbitMQ" in result.stderr


def test_schema_prints_the_care_event_json_schema() -> None:
    result = run("schema")
    assert result.returncode == 0
    assert json.loads(result.stdout)["title"] == "CareEvent"


@pytest.mark.parametrize(
    "fixture",
    [FIXTURES / "mh_a03_discharge.hl7",
     REPO / "tests" / "fixtures" / "fhir" / "acute_transfer_transaction.json"],
)  # fmt: skip
def test_map_to_fhir_prints_a_uk_core_messaging_bundle(fixture: Path) -> None:
    result = run("map", str(fixture), "--to", "fhir")
    assert result.returncode == 0, result.stderr
    bundle = json.loads(result.stdout)
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "message"
    assert bundle["entry"][0]["resource"]["resourceType"] == "MessageHeader"


def test_map_to_notification_shows_the_home_team_rule_for_an_out_of_area_patient() -> None:
    config = REPO / "config" / "carebridge.example.yaml"
    away = FIXTURES / "mh_a03_transition_out_of_area.hl7"
    result = run("map", str(away), "--to", "notification", "-c", str(config),
                 "--source", "mh-trust")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "recipient: othertown-community-mh-team" in result.stdout
    assert "out of area: the patient's home team" in result.stdout
    assert "ZZ9" not in result.stdout.split("text:")[0]  # the district is never in the why
