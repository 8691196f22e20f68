"""The fuzz targets themselves: every seed through every target, the targets' own checks,
and a short coverage-guided run of each (the long run is `make fuzz`, docs/reliability.md).

A short run is a fixed number of libFuzzer inputs per target from a fixed seed, in its own
process, on a working corpus in a temporary folder: the same inputs on every machine however
loaded, so it is repeatable; it must end (exit 0), having run inputs and counted coverage in the
product, without a crash.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

from tests.fuzz import run
from tests.fuzz.targets._support import InvariantBroken

CORPUS = Path(__file__).parent / "corpus"
SHORT_SECONDS = 120
"""A cap only: the short run is `SHORT_RUNS` inputs, a few seconds on this machine."""
SHORT_RUNS = 1500


def _target(name: str) -> ModuleType:
    return importlib.import_module(f"tests.fuzz.targets.{name}")


def test_every_target_is_run_by_the_runner() -> None:
    found = {p.stem for p in (Path(__file__).parent / "targets").glob("*.py")}
    assert found - {"__init__", "_support"} == set(run.TARGETS)


@pytest.mark.parametrize("name", run.TARGETS)
def test_every_seed_passes_the_target(name: str) -> None:
    own = sorted((CORPUS / name).iterdir())
    assert len(own) >= 5, f"{name} has {len(own)} seeds"
    target = _target(name)
    for seed in sorted(CORPUS.glob("*/*")):  # the other targets' seeds are inputs too
        target.TestOneInput(seed.read_bytes())


def test_the_mllp_target_sees_a_lost_byte(monkeypatch: pytest.MonkeyPatch) -> None:
    target = _target("mllp_decoder")
    seed = (CORPUS / "mllp_decoder" / "two_frames_junk.bin").read_bytes()
    target.TestOneInput(seed)
    feed = target.MllpDecoder.feed

    def lossy(self: object, data: bytes) -> object:
        return feed(self, data[:-1] if len(data) > 3 else data)

    monkeypatch.setattr(target.MllpDecoder, "feed", lossy)
    with pytest.raises(InvariantBroken):
        target.TestOneInput(seed)


def test_the_mllp_reference_reads_the_documented_framing() -> None:
    frames, discarded, open_frame = _target("mllp_decoder").reference_frames(
        b"junk\r\n\x0bpartial\x0bMSH|a\x1c\r\x0bMSH|toolong\x1c\x0bopen", 5
    )
    assert [(f.payload, f.oversized) for f in frames] == [(b"MSH|a", False), (b"MSH|t", True)]
    assert discarded == len(b"junk") + len(b"\x0bpartial")  # CR and LF are not counted
    assert open_frame


def test_the_ack_target_sees_a_forged_segment(monkeypatch: pytest.MonkeyPatch) -> None:
    target = _target("hl7_ack")
    seed = (CORPUS / "hl7_ack" / "aa.bin").read_bytes()
    target.TestOneInput(seed)
    build = target.build_ack
    monkeypatch.setattr(target, "build_ack", lambda *a, **k: build(*a, **k) + b"PID|1||FORGED\r")
    with pytest.raises(InvariantBroken, match="segments"):
        target.TestOneInput(seed)


@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings")
def test_the_mapping_target_sees_an_event_that_does_not_round_trip(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = _target("hl7v2_mapping")
    seed = (CORPUS / "hl7v2_mapping" / "a03_discharge.hl7").read_bytes()
    target.TestOneInput(seed)
    mapped = target.map_hl7v2
    monkeypatch.setattr(
        target, "map_hl7v2", lambda *a: mapped(*a).model_copy(update={"event_id": 7})
    )
    with pytest.raises((InvariantBroken, ValueError)):  # ValueError: pydantic's
        target.TestOneInput(seed)


@pytest.mark.parametrize("name", run.TARGETS)
def test_short_coverage_guided_run(name: str, tmp_path: Path) -> None:
    command = run.command(name, tmp_path, SHORT_SECONDS, extra=[], runs=SHORT_RUNS)
    done = subprocess.run(
        command, cwd=run.ROOT, capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )  # fmt: skip
    output = done.stderr + done.stdout
    assert done.returncode == 0, output[-3000:]
    assert not list((tmp_path / "crashes").iterdir()), output[-3000:]
    assert re.search(r"Instrumenting mappings|Instrumenting adapters|Instrumenting engine", output)
    executed = re.search(r"stat::number_of_executed_units: (\d+)", output)
    assert executed is not None, output[-3000:]
    assert int(executed.group(1)) > 0, output[-3000:]
    coverage = re.findall(r" cov: (\d+) ", output)
    assert coverage, output[-3000:]
    assert int(coverage[-1]) > 20, output[-3000:]
