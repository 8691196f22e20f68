"""Parse-and-map speed on the corpus (issue 16 point 6), beside a hand-written split parse.

    .venv/bin/python bench/hl7v2_mapping.py [--corpus DIR] [--seconds 2] [--repeat 5]
                                            [--skip-hl7apy]

The corpus is `--corpus`, else ``$CAREBRIDGE_CORPUS``, else ``../shared/corpus`` beside the
repository (the tests read it the same way). Every file its INDEX.tsv lists is read once; then
for each piece of work as many passes over its messages as fit in `--seconds` run, `--repeat`
times, and the median rate is printed.

Rates are **per core**: messages per second of this process's CPU time
(`time.process_time`), not of the wall clock. The machine is shared; another process's load
then slows a run down less than it stretches the wall clock. One process, one thread, so one
core at most.

1. **Issue 16 point 6**: `mappings.inbound.map_message` (what intake runs: format detection,
   then the HL7 v2 or the FHIR mapping) on every corpus file of each format, rejections
   included (a precise `MappingError` is handled work, counted like a mapped message): HL7 v2,
   FHIR, and both together (every file once per pass, so the together figure is the harmonic
   mix of the two, weighted by file count). Beside them, the hand-written split parse of
   `bench/trivial_engine.py` (15 fields, no mapping) on the HL7 v2 files, and each figure's
   ratio to it; and `orjson.loads` alone on the FHIR files, the floor of any FHIR mapping that
   parses the JSON (no mapping can be faster than its parse). Target: at least 20,000
   messages/s per core.
2. **HL7 v2 ADT detail** (the files whose INDEX type is ADT): the reader alone, parse + map,
   and hl7apy's full parse for scale (`--skip-hl7apy` leaves it out: it runs about 20/s).

A speed change to the mapping must not change one output. ``--dump FILE`` measures nothing:
it maps every corpus HL7 v2 file, the golden fixtures, the fuzz seeds and `--mutants` seeded
mutants of them (bytes and timestamps changed, ``""`` and separators inserted, spans copied)
under five profiles (the golden fixtures' three, and two more: zones UTC and New York, code
tables, local fields, test NHS numbers, a local PID-2) and writes one line per outcome: the
``repr`` of the `CareEvent` (every value with its type) or the `MappingError`'s code,
location and reason. Run it before and after a change and
``cmp`` the two files; the mutants are the same on every run.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import random
import re
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.trivial_engine import split_parse  # noqa: E402
from mappings import native  # noqa: E402
from mappings.errors import MappingError  # noqa: E402
from mappings.hl7v2.inbound import map_hl7v2  # noqa: E402
from mappings.hl7v2.reader import parse  # noqa: E402
from mappings.inbound import map_message  # noqa: E402
from mappings.profile import FeedProfile  # noqa: E402

TARGET = 20_000
PROFILE = FeedProfile(feed="bench")
Work = Callable[[bytes], object]


def default_corpus() -> Path:
    env = os.environ.get("CAREBRIDGE_CORPUS")
    return Path(env) if env else REPO.parent / "shared" / "corpus"


def corpus_files(corpus: Path) -> list[dict[str, str]]:
    with (corpus / "INDEX.tsv").open(newline="", encoding="utf-8") as index:
        return list(csv.DictReader(index, delimiter="\t"))


def read(corpus: Path, rows: list[dict[str, str]], fmt: str, adt_only: bool = False) -> list[bytes]:
    return [
        (corpus / r["path"]).read_bytes()
        for r in rows
        if r["format"] == fmt and (not adt_only or r["type"].startswith("ADT"))
    ]


def rate(messages: Sequence[bytes], work: Work, seconds: float) -> float:
    """Messages per CPU second of this process."""
    done, start = 0, time.process_time()
    while (used := time.process_time() - start) < seconds:
        for raw in messages:
            work(raw)
        done += len(messages)
    return done / used


def rejections_count(work: Work) -> Work:
    """A precise rejection is part of the hot path too: count it as handled."""

    def counted(raw: bytes) -> object:
        try:
            return work(raw)
        except MappingError as exc:
            return exc

    return counted


def refused(messages: Sequence[bytes], work: Work) -> int:
    return sum(isinstance(rejections_count(work)(m), MappingError) for m in messages)


def hl7apy_full_parse(raw: bytes) -> object:
    from hl7apy.parser import parse_message

    text = raw.decode("utf-8", "replace").lstrip("\ufeff").replace("\r\n", "\r")
    try:
        return parse_message(text.replace("\n", "\r"), find_groups=True)
    except Exception as exc:  # hl7apy refuses some real messages: count the try
        return exc


def median_rate(messages: Sequence[bytes], work: Work, args: argparse.Namespace) -> float:
    return statistics.median(rate(messages, work, args.seconds) for _ in range(args.repeat))


def issue_figures(corpus: Path, args: argparse.Namespace) -> None:
    rows = corpus_files(corpus)
    hl7, fhir = read(corpus, rows, "hl7v2"), read(corpus, rows, "fhir")
    mapped = rejections_count(lambda raw: map_message(raw, PROFILE))
    split = median_rate(hl7, split_parse, args)
    print("issue 16 point 6: map_message on every corpus file, rejections included")
    print(f"  {'work':44} {'files':>5} {'refused':>7} {'msg/s/core':>11} {'/ split':>8}")
    for name, messages in (
        ("HL7 v2", hl7),
        ("FHIR", fhir),
        ("together (HL7 v2 + FHIR)", hl7 + fhir),
    ):
        figure = median_rate(messages, mapped, args)
        rejected = refused(messages, lambda raw: map_message(raw, PROFILE))
        verdict = "met" if figure >= TARGET else "NOT met"
        print(f"  parse + map, {name:31} {len(messages):>5} {rejected:>7} {figure:>11,.0f} "
              f"{figure / split:>8.3f}  target {TARGET:,}: {verdict}")  # fmt: skip
    print(f"  {'hand-written split parse (15 fields), HL7 v2':44} {len(hl7):>5} {'-':>7} "
          f"{split:>11,.0f} {1:>8.3f}")  # fmt: skip
    floor = median_rate(fhir, _json_parse, args)
    print(f"  {'orjson.loads alone (the JSON parse), FHIR':44} {len(fhir):>5} {'-':>7} "
          f"{floor:>11,.0f} {floor / split:>8.3f}")  # fmt: skip


def _json_parse(raw: bytes) -> object:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:  # a corpus file that is not JSON is refused too
        return exc


def adt_detail(corpus: Path, args: argparse.Namespace) -> None:
    messages = read(corpus, corpus_files(corpus), "hl7v2", adt_only=True)
    rejected = refused(messages, lambda raw: map_hl7v2(raw, PROFILE))
    print(f"HL7 v2 ADT files: {len(messages)} ({rejected} of them precise rejections)")
    contenders: dict[str, Work] = {
        "carebridge parse only": rejections_count(parse),
        "carebridge parse + map (map_hl7v2)": rejections_count(lambda r: map_hl7v2(r, PROFILE)),
    }
    if not args.skip_hl7apy:
        contenders["hl7apy parse_message (full)"] = hl7apy_full_parse
    warnings.simplefilter("ignore")
    for name, work in contenders.items():
        figure = median_rate(messages, work, args)
        print(f"  {name:44} {figure:>11,.0f} messages/s per core")


_INSERTS = (
    b"|", b"^", b"~", b"&", b"\\", b'""', b"\r", b"\n", b"0", b"9", b" ", b"A", b".", b"00", b"19",
    b"+0100", b"-0500", b"2026", b"20261025013000", b"20260329013000", b"\\X41\\", b"\\.br\\",
    b"NHS", b"NH", b"9434765919", b"9434765910", b"\xc3\xa9", b"\xff", b"A01", b"A03", b"A07",
    b"A40", b"PV2|", b"ZU5|", b"OBX|", b"MRG|", b"EVN|", b"PD1|", b"ZU8|", b"MSH|^~\\&|",
)  # fmt: skip
_STAMP = re.compile(rb"\d{8,14}(?:[+-]\d{4})?")
_DUMP_PROFILES: dict[str, object] = {
    "utc-test-local": {"feed": "x", "timezone": "UTC", "nhs_numbers": "test", "pid_2": "local"},
    "new-york-local-fields": {
        "feed": "y",
        "timezone": "America/New_York",
        "ward_component": 1,
        "code_tables": {"discharge_method": "itk-0112-discharge-method"},
        "legal_status": [{"field": "ZU5-2", "start": "ZU5-4", "end": "ZU5-5"}],
        "risk_flags": [{"field": "ZU5-3"}],
    },
}


def _mutant(seed: bytes, rng: random.Random) -> bytes:
    data = bytearray(seed)
    for _ in range(rng.randint(1, 3)):
        stamps = list(_STAMP.finditer(data)) if rng.random() < 0.4 else []
        if stamps:  # a timestamp, valid or not, with or without a fraction or an offset
            match = rng.choice(stamps)
            year = rng.choice((1, 1900, 1970, 2025, 2026, 9999))
            parts = (rng.randint(0, 13), rng.randint(0, 32), rng.randint(0, 25), rng.randint(0, 60))
            text = f"{year:04d}" + "".join(f"{p:02d}" for p in parts) + f"{rng.randint(0, 60):02d}"
            text = text[: rng.choice((4, 6, 8, 10, 12, 14, 14, 14))]
            if rng.random() < 0.2:
                text += f".{rng.randint(0, 99999)}"
            if rng.random() < 0.3:
                text += (
                    f"{rng.choice('+-')}{rng.randint(0, 15):02d}{rng.choice((0, 30, 45, 60)):02d}"
                )
            data[match.start() : match.end()] = text.encode()
            continue
        for _ in range(rng.randint(1, 6)):
            op, at = rng.random(), rng.randrange(len(data) + 1)
            if op < 0.3 and data:
                del data[at : at + rng.randint(1, 4)]
            elif op < 0.7:
                data[at:at] = rng.choice(_INSERTS)
            elif op < 0.85 and data:
                to = rng.randrange(len(data) + 1)
                data[to:to] = data[at : at + rng.randint(1, 30)]
            elif data:
                data[at : at + 1] = bytes([rng.choice(b"0123456789")])
    return bytes(data)


def dump(corpus: Path, out: Path, mutants: int) -> None:
    """Every outcome of `map_message` on a fixed set of inputs, one line each (see above)."""
    fixtures = REPO / "tests" / "fixtures" / "hl7v2"
    settings = yaml.safe_load((fixtures / "profiles.yaml").read_text(encoding="utf-8"))
    profiles = {
        name: FeedProfile.from_mapping(data)
        for name, data in {**settings, **_DUMP_PROFILES}.items()
    }
    seeds = read(corpus, corpus_files(corpus), "hl7v2")
    seeds += [p.read_bytes() for p in sorted(fixtures.glob("*.hl7"))]
    seeds += [
        p.read_bytes() for p in sorted((REPO / "tests" / "fuzz" / "corpus").glob("hl7v2_*/*"))
    ]
    rng = random.Random(1234)
    inputs = seeds + [_mutant(rng.choice(seeds), rng) for _ in range(mutants)]
    with out.open("w", encoding="utf-8") as lines:
        for number, raw in enumerate(inputs):
            for name, profile in profiles.items():
                try:
                    outcome = repr(map_message(raw, profile))
                except MappingError as exc:
                    outcome = f"refused {exc.code} {exc.location}: {str(exc)!r}"
                lines.write(f"{number} {name} {outcome}\n")
    print(f"{len(inputs)} inputs x {len(profiles)} profiles written to {out}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--corpus", type=Path, default=default_corpus())
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-hl7apy", action="store_true")
    parser.add_argument("--dump", type=Path, help="write every outcome here; measure nothing")
    parser.add_argument("--mutants", type=int, default=12_000)
    args = parser.parse_args()
    if not (args.corpus / "INDEX.tsv").exists():
        print(f"no corpus at {args.corpus} (--corpus or CAREBRIDGE_CORPUS)", file=sys.stderr)
        return 2
    state = native.STATUS["mappings.hl7v2"]
    build = f"mappings.hl7v2 {'compiled' if state.compiled else 'plain Python'} ({state.reason})"
    if args.dump is not None:
        print(build)
        dump(args.corpus, args.dump, args.mutants)
        return 0
    machine = f"python {platform.python_version()}, {os.cpu_count()} cores, one process"
    print(f"{machine}; rates are messages per CPU second (median of {args.repeat}), "
          f"load {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(build)
    issue_figures(args.corpus, args)
    adt_detail(args.corpus, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
