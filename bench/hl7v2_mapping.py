"""HL7v2 parse-and-map speed: Carebridge's hot path beside hl7apy's full parse, in one run.

    .venv/bin/python bench/hl7v2_mapping.py [--corpus ../shared/corpus] [--seconds 2] [--repeat 5]

Reads every ADT file of the corpus (INDEX.tsv), then for each reader runs as many passes as fit
in `--seconds`, `--repeat` times, and reports the median messages/s on one core. Target: at
least 2,000 messages/s per core for Carebridge's parse-and-map.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mappings.errors import MappingError  # noqa: E402
from mappings.hl7v2.inbound import map_hl7v2  # noqa: E402
from mappings.hl7v2.reader import parse  # noqa: E402
from mappings.profile import FeedProfile  # noqa: E402


def corpus_adt(corpus: Path) -> list[bytes]:
    with (corpus / "INDEX.tsv").open(newline="") as index:
        rows = list(csv.DictReader(index, delimiter="\t"))
    return [(corpus / r["path"]).read_bytes() for r in rows
            if r["format"] == "hl7v2" and r["type"].startswith("ADT")]  # fmt: skip


def rate(messages: list[bytes], work: Callable[[bytes], object], seconds: float) -> float:
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for raw in messages:
            work(raw)
        done += len(messages)
    return done / elapsed


def rejections_count(work: Callable[[bytes], object]) -> Callable[[bytes], object]:
    """A precise rejection is part of the hot path too: count it as handled."""

    def counted(raw: bytes) -> object:
        try:
            return work(raw)
        except MappingError as exc:
            return exc

    return counted


def carebridge(profile: FeedProfile) -> Callable[[bytes], object]:
    return rejections_count(lambda raw: map_hl7v2(raw, profile))


def hl7apy_full_parse(raw: bytes) -> object:
    from hl7apy.parser import parse_message

    text = raw.decode("utf-8", "replace").lstrip("\ufeff").replace("\r\n", "\r")
    try:
        return parse_message(text.replace("\n", "\r"), find_groups=True)
    except Exception as exc:  # hl7apy refuses some real messages: count the try
        return exc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if not (args.corpus / "INDEX.tsv").exists():
        print(f"no corpus at {args.corpus}", file=sys.stderr)
        return 2
    messages = corpus_adt(args.corpus)
    profile = FeedProfile(feed="bench")
    mapped = sum(not isinstance(carebridge(profile)(m), MappingError) for m in messages)
    warnings.simplefilter("ignore")
    contenders: dict[str, Callable[[bytes], object]] = {
        "carebridge parse only": rejections_count(parse),
        "carebridge parse + map": carebridge(profile),
        "hl7apy parse_message (full)": hl7apy_full_parse,
    }
    print(f"{len(messages)} corpus ADT messages ({mapped} map, the rest are precise rejections)")
    print(f"python {platform.python_version()}, {os.cpu_count()} cores, one process (one core)")
    results: dict[str, float] = {}
    for name, work in contenders.items():
        seconds = args.seconds if "hl7apy" not in name else max(args.seconds, 3.0)
        runs = [rate(messages, work, seconds) for _ in range(args.repeat)]
        results[name] = statistics.median(runs)
        print(f"  {name:32} {results[name]:>10,.0f} messages/s (median of {args.repeat})")
    ratio = results["carebridge parse + map"] / results["hl7apy parse_message (full)"]
    print(f"  parse + map is {ratio:,.0f}x hl7apy's full parse; target >= 2,000 messages/s: "
          f"{'met' if results['carebridge parse + map'] >= 2000 else 'NOT met'}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
