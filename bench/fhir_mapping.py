"""FHIR parse-and-map and render speed, beside validating the whole Bundle with the models.

    .venv/bin/python bench/fhir_mapping.py [--corpus DIR] [--seconds 2] [--repeat 5]

The corpus is `--corpus`, else ``$CAREBRIDGE_CORPUS``, else ``../shared/corpus`` beside the
repository.

Reads the FHIR fixtures (tests/fixtures/fhir) and the corpus FHIR files that map, then for
each piece of work runs as many passes as fit in `--seconds`, `--repeat` times, and reports
the median messages/s on one core:

- ``map_fhir``: parse, limits, model validation of the resources read, mapping;
- ``render_fhir_message + orjson.dumps``: the outbound Bundle as bytes, from the care events;
- ``Bundle.model_validate`` of the whole inbound Bundle, for comparison (what validating every
  resource, read or not, would cost).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fhir.resources.R4B.bundle import Bundle  # noqa: E402

from mappings.errors import MappingError  # noqa: E402
from mappings.fhir.inbound import map_fhir  # noqa: E402
from mappings.fhir.outbound import render_fhir_message  # noqa: E402
from mappings.model import CareEvent  # noqa: E402
from mappings.profile import FeedProfile  # noqa: E402

PROFILE = FeedProfile(feed="bench")


def messages(corpus: Path) -> list[bytes]:
    """The fixtures, and the corpus FHIR files that map (rejections are not the hot path)."""
    found = [p.read_bytes() for p in sorted((REPO / "tests" / "fixtures" / "fhir").glob("*.json"))]
    for path in sorted((corpus / "fhir").rglob("*.json")) if (corpus / "fhir").is_dir() else []:
        raw = path.read_bytes()
        try:
            map_fhir(raw, PROFILE)
        except MappingError:
            continue
        found.append(raw)
    return found


def rate(items: Sequence[object], work: Callable[[object], object], seconds: float) -> float:
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for item in items:
            work(item)
        done += len(items)
    return done / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    corpus = os.environ.get("CAREBRIDGE_CORPUS")
    default = Path(corpus) if corpus else REPO.parent / "shared" / "corpus"
    parser.add_argument("--corpus", type=Path, default=default)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    raws = messages(args.corpus)
    events: list[CareEvent] = [map_fhir(raw, PROFILE) for raw in raws]
    bundles = [orjson.loads(raw) for raw in raws if orjson.loads(raw)["resourceType"] == "Bundle"]
    contenders: dict[str, tuple[Sequence[object], Callable[[object], object]]] = {
        "map_fhir (parse + validate + map)": (raws, lambda raw: map_fhir(raw, PROFILE)),  # type: ignore[arg-type]
        "render_fhir_message + orjson.dumps": (
            events,
            lambda event: orjson.dumps(render_fhir_message(event)),  # type: ignore[arg-type]
        ),
        "Bundle.model_validate (whole Bundle)": (bundles, Bundle.model_validate),
    }
    print(f"{len(raws)} FHIR messages that map ({len(bundles)} Bundles)")
    print(f"python {platform.python_version()}, {os.cpu_count()} cores, one process (one core)")
    for name, (items, work) in contenders.items():
        runs = [rate(items, work, args.seconds) for _ in range(args.repeat)]
        print(f"  {name:40} {statistics.median(runs):>10,.0f} messages/s (median of {args.repeat})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
