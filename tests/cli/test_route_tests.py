"""`carebridge test`: YAML route tests run against a real config, with no broker or store."""

from __future__ import annotations

import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from engine.cli import main
from engine.routetest.paths import MISSING, PathError, hl7_value, json_value, mismatch

REPO = Path(__file__).resolve().parents[2]
DISCHARGE = REPO / "tests" / "fixtures" / "hl7v2" / "mh_a03_discharge.hl7"
EXAMPLE_ENV = [
    "CAREBRIDGE_AMQP_URL",
    "CAREBRIDGE_STORE_URL",
    "COMMUNITY_TEAM_WEBHOOK_SECRET",
    "GP_WEBHOOK_SECRET",
    "GP_CONNECT_TOKEN",
    "NOTIFY_ACK_SECRET",
    "ALERT_WEBHOOK_SECRET",
]
CONFIG = """\
sources:
  - {name: mh-trust, care_setting: mental_health}
destinations:
  - {name: pas, type: mllp, host: pas.example, port: 2575}
  - {name: ehr, type: fhir, base_url: "https://ehr.example/fhir"}
  - {name: team, type: webhook, url: "https://team.example/hook"}
routes:
  - {name: discharges, match: {kinds: [discharge]}, to: [pas, ehr, team]}
"""


@pytest.fixture
def example_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAREBRIDGE_AMQP_URL", "amqp://rabbitmq.example:5672/")
    monkeypatch.setenv("CAREBRIDGE_STORE_URL", "sqlite+aiosqlite:///carebridge.db")
    for name in EXAMPLE_ENV[2:]:
        monkeypatch.setenv(name, f"{name.lower()}-" + "x" * 40)


def write(tmp_path: Path, cases: str, *, config: str = CONFIG) -> Path:
    (tmp_path / "carebridge.yaml").write_text(config)
    path = tmp_path / "tests.yaml"
    path.write_text("config: carebridge.yaml\n" + textwrap.dedent(cases))
    return path


def discharge_case(expect: str) -> str:
    return f"""\
tests:
  - name: the discharge
    source: mh-trust
    input: {{file: {DISCHARGE}}}
    received_at: 2026-02-02T10:45:05Z
    expect:
{textwrap.indent(textwrap.dedent(expect), "      ")}
"""


def test_the_example_configs_own_tests_pass(
    example_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["test", str(REPO / "config" / "tests")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "PASS" in out
    assert "FAIL" not in out


def test_route_tests_need_no_secrets_in_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in EXAMPLE_ENV:
        monkeypatch.delenv(name, raising=False)
    code = main(["test", str(REPO / "config" / "tests")])
    captured = capsys.readouterr()
    out = captured.out
    assert "GP_WEBHOOK_SECRET" in captured.err  # named as a warning, not a failure
    assert code == 0, out
    assert "PASS" in out
    assert "FAIL" not in out
    assert out.strip().splitlines()[-1].endswith("0 failed")


def test_payloads_are_checked_by_hl7v2_position_and_json_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        discharge_case("""\
            destinations: [pas, ehr, team]
            payloads:
              pas: {MSH-9.1: ADT, MSH-9.2: A03, PID-3.1: "9434765919", PV1-3.2: WARD9}
              ehr: {type: message, "entry[0].resource.resourceType": MessageHeader}
              team: {kind: discharge, occurred_at.utc: 2026-02-02T10:30:00+00:00}
        """),
    )
    assert main(["test", str(path)]) == 0, capsys.readouterr().out


def test_a_failing_case_names_the_file_the_case_and_each_difference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        discharge_case("""\
            event: {kind: transfer}
            destinations: [pas, team]
            payloads:
              pas: {PV1-3.2: WARD1}
              ehr: {"entry[0].resource.resourceType": {contains: Bundle}}
        """),
    )
    assert main(["test", str(path)]) == 1
    out = capsys.readouterr().out
    assert str(path) in out
    assert "FAIL  the discharge" in out
    assert "event.kind: expected 'transfer', got 'discharge'" in out
    assert "destinations: unexpected ['ehr']" in out
    assert "payloads[pas].PV1-3.2: expected 'WARD1', got 'WARD9'" in out
    assert "payloads[ehr].entry[0].resource.resourceType: expected to contain 'Bundle'" in out
    assert out.strip().splitlines()[-1] == "0 passed, 1 failed"


def test_a_rejection_is_expected_by_a_phrase_of_its_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = """\
        tests:
          - name: garbage is rejected
            source: mh-trust
            input: {hl7v2: "not a message at all"}
            expect: {rejected: ""}
          - name: the reason is checked
            source: mh-trust
            input: {hl7v2: "not a message at all"}
            expect: {rejected: "a phrase that is not in the reason"}
          - name: an accepted message expected to be rejected
            source: mh-trust
            input: {file: DISCHARGE}
            expect: {rejected: ""}
    """.replace("DISCHARGE", str(DISCHARGE))
    assert main(["test", str(write(tmp_path, cases))]) == 1
    out = capsys.readouterr().out
    assert "PASS  garbage is rejected" in out
    assert "rejection reason: expected to contain 'a phrase that is not in the reason'" in out
    assert "outcome: expected rejected (any reason), got accepted as discharge" in out


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("tests: [", "not valid YAML"),
        ("tests: []", "tests: List should have at least 1 item"),
        ("tests: [{name: x, source: mh-trust, input: {}, expect: {}}]", "tests[0].input"),
        (
            "tests: [{name: x, source: a, input: {hl7v2: x}, expect: {}, extra: 1}]",
            "tests[0].extra",
        ),
    ],
)
def test_a_broken_test_file_exits_2_with_path_and_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, problem: str
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("config: carebridge.yaml\n" + content)
    (tmp_path / "carebridge.yaml").write_text(CONFIG)
    assert main(["test", str(path)]) == 2
    out = capsys.readouterr().out
    assert f"BROKEN  {path}" in out
    assert problem in out


def test_an_unknown_source_or_a_malformed_path_is_a_broken_case(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = """\
        tests:
          - {name: unknown source, source: nowhere, input: {hl7v2: x}, expect: {}}
          - name: bad position
            source: mh-trust
            input: {file: DISCHARGE}
            expect: {payloads: {pas: {PV1-x: 1}}}
    """.replace("DISCHARGE", str(DISCHARGE))
    assert main(["test", str(write(tmp_path, cases))]) == 2
    out = capsys.readouterr().out
    assert "ERROR  unknown source" in out
    assert "no source named 'nowhere'" in out
    assert "'PV1-x' is not an HL7v2 position" in out


def test_junit_xml_counts_passes_failures_and_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = """\
        tests:
          - {name: passes, source: mh-trust, input: {file: DISCHARGE}, expect:
             {event: {kind: discharge}}}
          - {name: fails, source: mh-trust, input: {file: DISCHARGE}, expect:
             {event: {kind: admission}}}
          - {name: errs, source: nowhere, input: {hl7v2: x}, expect: {}}
    """.replace("DISCHARGE", str(DISCHARGE))
    junit = tmp_path / "out.xml"
    assert main(["test", str(write(tmp_path, cases)), "--junit", str(junit)]) == 2
    capsys.readouterr()
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "1")
    failure = suite.find("testcase[@name='fails']/failure")
    assert failure is not None
    assert "event.kind" in (failure.get("message") or "")


def test_minus_c_overrides_the_files_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, discharge_case("destinations: [team]"))
    other = tmp_path / "other.yaml"
    other.write_text(CONFIG.replace("to: [pas, ehr, team]", "to: [team]"))
    assert main(["test", str(path)]) == 1
    assert main(["test", str(path), "-c", str(other)]) == 0
    capsys.readouterr()


def test_paths_read_json_and_hl7v2_and_compare_as_documented() -> None:
    document = {"a": {"b": [{"c": 1}, {"c": None}]}}
    assert json_value(document, "a.b[0].c") == 1
    assert json_value(document, "a.b[5].c") is MISSING
    message = DISCHARGE.read_bytes()
    assert hl7_value(message, "PID-3[2].1") == "RXT1234567"
    assert hl7_value(message, "PID-5[2].2") == "AL"
    assert hl7_value(message, "ZU5-1") is MISSING
    assert mismatch(1, "1") is None
    assert mismatch("2026-02-05T10:30:00+00:00", "2026-02-05T10:30:00Z") is None
    assert mismatch(None, None) is None
    assert mismatch(MISSING, {"present": False}) is None
    assert mismatch("WARD9", {"matches": "^WARD\\d$"}) is None
    assert mismatch("x", "y") == "expected 'y', got 'x'"
    for bad in ("a..b", ".a", "a[x]", ""):
        with pytest.raises(PathError):
            json_value(document, bad)
    with pytest.raises(PathError):
        mismatch("x", {"bogus": 1})
