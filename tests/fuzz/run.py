"""Run the fuzz targets under atheris (libFuzzer) and summarise what each run did.

    .venv/bin/python -m tests.fuzz.run --seconds 600 --jobs 2            # what `make fuzz` runs
    .venv/bin/python -m tests.fuzz.run hl7_ack --seconds 30               # one target, briefly
    .venv/bin/python -m tests.fuzz.run fhir_mapping --extra ~/corpus/fhir # more read-only seeds

Each target runs in its own process on a working corpus under `--workdir` (outside the repo:
what libFuzzer adds there is not committed), with the committed seeds of
`tests/fuzz/corpus/<target>/` (and any `--extra` folders) read-only after it. A target runs
until it has used `--seconds` of CPU (not wall-clock time: on a busy machine a 600 s run would
otherwise get less), in rounds of libFuzzer's ``-max_total_time``. Crashes and hangs are written
under `<workdir>/<target>/crashes/`; the first one stops that target. The summary (executions,
exec/s, libFuzzer's final ``cov:`` and ``ft:`` counters, corpus size, crashes) is printed and
written to `<workdir>/summary.json` and `summary.md`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TARGETS = (
    "hl7v2_reader",
    "hl7v2_mapping",
    "fhir_mapping",
    "mllp_decoder",
    "hl7_ack",
    "config_loader",
)
DICTIONARIES = {
    "hl7v2_reader": "hl7v2.dict",
    "hl7v2_mapping": "hl7v2.dict",
    "hl7_ack": "hl7v2.dict",
    "fhir_mapping": "fhir.dict",
    "config_loader": "config.dict",
}
MAX_LEN = {"fhir_mapping": 16384, "config_loader": 8192, "hl7v2_mapping": 8192}
TIMEOUT_SECONDS = 30
"""One input taking longer than this (wall-clock, on a busy machine) is a hang (``-timeout``)."""

_STATUS = re.compile(r"^#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)/", re.MULTILINE)
_STAT = re.compile(r"^stat::(\w+):\s+(\d+)", re.MULTILINE)


@dataclass
class Result:
    target: str
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    executions: int = 0
    cov: int = 0
    ft: int = 0
    corpus: int = 0
    rounds: int = 0
    crashes: list[str] = field(default_factory=list)
    exit_codes: list[int] = field(default_factory=list)

    @property
    def exec_per_second(self) -> float:
        return self.executions / self.cpu_seconds if self.cpu_seconds else 0.0


def command(
    target: str, workdir: Path, seconds: int, extra: list[Path], *, runs: int | None = None
) -> list[str]:
    """The libFuzzer command line of one round of `target`. With `runs`, a repeatable round for
    the test suite: that many inputs from a fixed seed (the same inputs on any machine, however
    loaded), and no slow-unit reports (a loaded machine is not a finding)."""
    corpus, crashes = workdir / "corpus", workdir / "crashes"
    corpus.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(parents=True, exist_ok=True)
    args = [
        sys.executable,
        "-m",
        f"tests.fuzz.targets.{target}",
        f"-max_total_time={seconds}",
        f"-timeout={TIMEOUT_SECONDS}",
        "-rss_limit_mb=3072",
        f"-artifact_prefix={crashes}/",
        "-print_final_stats=1",
    ]
    if runs is not None:
        args += [f"-runs={runs}", "-seed=1", "-report_slow_units=100000"]
    if target in MAX_LEN:
        args.append(f"-max_len={MAX_LEN[target]}")
    if target in DICTIONARIES:
        args.append(f"-dict={HERE / 'dicts' / DICTIONARIES[target]}")
    return [*args, str(corpus), str(HERE / "corpus" / target), *map(str, extra)]


def fuzz(
    target: str, seconds: int, workdir: Path, extra: list[Path], wall_limit: float | None = None
) -> Result:
    """Fuzz `target` until it has used `seconds` of CPU or found a crash, or (`wall_limit`)
    that many seconds have passed: the summary then shows the CPU it did get."""
    result = Result(target)
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "fuzz.log"
    log.unlink(missing_ok=True)
    started = time.monotonic()
    while result.cpu_seconds < seconds and not result.crashes:
        left = max(10, int(seconds - result.cpu_seconds))
        if wall_limit is not None:
            wall_left = int(wall_limit - (time.monotonic() - started))
            if wall_left < 10:
                break
            left = min(left, wall_left)
        with log.open("a") as out:
            process = subprocess.Popen(
                command(target, workdir, left, extra), cwd=ROOT, stdout=out, stderr=out
            )
            _, status, usage = os.wait4(process.pid, 0)
        result.cpu_seconds += usage.ru_utime + usage.ru_stime
        result.exit_codes.append(os.waitstatus_to_exitcode(status))
        result.rounds += 1
        _read_round(result, log.read_text(errors="replace").rsplit("INFO: Seed:", 1)[-1])
        result.crashes = sorted(p.name for p in (workdir / "crashes").iterdir())
        if result.exit_codes[-1] != 0 and not result.crashes:
            break  # failed without a crash file (a bad flag, an import error): see fuzz.log
    result.wall_seconds = time.monotonic() - started
    result.corpus = sum(1 for _ in (workdir / "corpus").iterdir())
    (workdir / "result.json").write_text(json.dumps(_row(result), indent=1) + "\n")
    return result


def _row(result: Result) -> dict[str, object]:
    return {**asdict(result), "exec_per_second": round(result.exec_per_second)}


def _read_round(result: Result, output: str) -> None:
    statuses = _STATUS.findall(output)
    if statuses:
        _, cov, ft, _corpus = statuses[-1]
        result.cov, result.ft = int(cov), int(ft)
    stats = dict(_STAT.findall(output))
    result.executions += int(stats.get("number_of_executed_units", 0))


def _extra(options: list[str], target: str) -> list[Path]:
    """The ``--extra`` folders for `target`: ``TARGET=DIR`` for it alone, ``DIR`` for all."""
    found = []
    for option in options:
        name, _, folder = option.rpartition("=")
        if name in ("", target):
            found.append(Path(folder))
    return found


def markdown(results: list[Result]) -> str:
    lines = [
        "| target | CPU s | executions | exec/s | cov | ft | corpus | crashes |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.target} | {r.cpu_seconds:.0f} | {r.executions:,} | {r.exec_per_second:,.0f}"
            f" | {r.cov:,} | {r.ft:,} | {r.corpus:,} | {', '.join(r.crashes) or 'none'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("targets", nargs="*", help=f"some of {', '.join(TARGETS)} (default: all)")
    parser.add_argument("--seconds", type=int, default=600, help="CPU seconds per target")
    parser.add_argument("--jobs", type=int, default=2, help="targets run at once")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/carebridge-fuzz"))
    parser.add_argument("--wall-limit", type=float, default=None,
                        help="stop a target after this many wall-clock seconds")  # fmt: skip
    parser.add_argument("--extra", action="append", default=[], metavar="[TARGET=]DIR",
                        help="a further read-only seed folder, for one target or all")  # fmt: skip
    args = parser.parse_args(argv)
    targets = args.targets or list(TARGETS)
    unknown = set(targets) - set(TARGETS)
    if unknown:
        parser.error(f"no such target: {', '.join(sorted(unknown))}")
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(
            pool.map(
                lambda t: fuzz(
                    t, args.seconds, args.workdir / t, _extra(args.extra, t), args.wall_limit
                ),
                targets,
            )
        )
    table = markdown(results)
    args.workdir.mkdir(parents=True, exist_ok=True)
    (args.workdir / "summary.md").write_text(table)
    summary = [_row(r) for r in results]
    (args.workdir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(table, end="")
    return 1 if any(r.crashes for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
