"""FHIR parse-and-map and render speed, beside validating the whole Bundle with the models.

    .venv/bin/python bench/fhir_mapping.py [--corpus DIR] [--seconds 2] [--repeat 5]
    .venv/bin/python bench/fhir_mapping.py --dump FILE [--mutants 4000]

The corpus is `--corpus`, else ``$CAREBRIDGE_CORPUS``, else ``../shared/corpus`` beside the
repository.

Reads the FHIR fixtures (tests/fixtures/fhir) and the corpus FHIR files that map, then for
each piece of work runs as many passes as fit in `--seconds`, `--repeat` times, and reports
the median messages/s on one core:

- ``map_fhir``: parse, limits, model validation of the resources read, mapping;
- ``render_fhir_message + orjson.dumps``: the outbound Bundle as bytes, from the care events;
- ``Bundle.model_validate`` of the whole inbound Bundle, for comparison (what validating every
  resource, read or not, would cost).

A speed change to the FHIR mapping must not change one output. ``--dump FILE`` measures
nothing: it runs `mappings.inbound.map_message` (what intake runs) on every corpus FHIR file
(those that map and those refused), the FHIR fixtures (``rejected/`` too), the fuzz seeds and
`--mutants` seeded mutants of them (elements removed, values replaced by other JSON types,
empty or blank strings, nulls in lists, unknown keys added, resourceType changed to another
type, an unknown one or a number, deep nesting near `MAX_DEPTH`, Bundle entries copied, bytes
cut off), plus two documents over both the depth and the node limits, under two profiles, and
writes one line per outcome: the ``repr`` of the `CareEvent` or the `MappingError`'s code,
location and reason. Run it before and after a change and ``cmp`` the two files; the mutants
are the same on every run.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fhir.resources.R4B.bundle import Bundle  # noqa: E402

from mappings.errors import MappingError  # noqa: E402
from mappings.fhir.inbound import map_fhir  # noqa: E402
from mappings.fhir.outbound import render_fhir_message  # noqa: E402
from mappings.inbound import map_message  # noqa: E402
from mappings.model import CareEvent  # noqa: E402
from mappings.profile import FeedProfile  # noqa: E402
from tests.json_paths import json_paths  # noqa: E402

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


_VALUES: tuple[Any, ...] = (
    None, "", " ", " x", "x ", "a  b", 0, -1, 1.5, True, [], {}, [None], [{}], ["x"], {"x": 1},
    "urn:uuid:x y", "GET", "get", "PUT", "Patient/1", "#p1", "2026-03-29T01:30:00+01:00",
    "2026-13-40", "\u00e9\u2028", {"resourceType": "Foo"}, {"resourceType": 5},
    {"resourceType": "Patient"}, [{"resourceType": "Foo", "id": "x"}],
)  # fmt: skip
_KEYS = (
    "foo", "resource", "search", "response", "link", "extension", "fhir_comments", "id", "_id",
    "method", "url", "ifNoneMatch", "contained", "modifierExtension", "resourceType", "_fullUrl",
)  # fmt: skip
_TYPES = ("Foo", "Patient", "Encounter", "Location", "Observation", "Bundle", "", 7)
_GONE = object()
_DUMP_PROFILES = (
    FeedProfile(feed="bench"),
    FeedProfile(feed="t", timezone="UTC", nhs_numbers="test"),
)


def _at(node: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        node = node[part]
    return node


def _replace(node: Any, path: tuple[Any, ...], value: Any) -> Any:
    """A copy of `node` with `value` at `path` (shared below the path); `_GONE` removes it."""
    if not path:
        return value
    copy: Any = dict(node) if isinstance(node, dict) else list(node)
    changed = _replace(node[path[0]], path[1:], value)
    if changed is _GONE:
        del copy[path[0]]
    else:
        copy[path[0]] = changed
    return copy


def _deep(levels: int, rng: random.Random) -> Any:
    value: Any = rng.choice(("x", 1, None))
    for _ in range(levels):
        value = [value] if rng.random() < 0.5 else {"extension": value}
    return value


def _changed(target: Any, depth: int, rng: random.Random) -> Any:
    """What a mutant puts in place of `target`, found `depth` containers down."""
    op = rng.random()
    if op < 0.2 and depth:
        return _GONE
    if op < 0.5:  # another JSON value, type or string
        return rng.choice(_VALUES)
    if op < 0.6 and isinstance(target, dict):  # a key added
        return {**target, rng.choice(_KEYS): rng.choice(_VALUES)}
    if op < 0.7 and isinstance(target, dict) and "resourceType" in target:
        return {**target, "resourceType": rng.choice(_TYPES)}
    if op < 0.77 and isinstance(target, str):  # emptied, blanked, cut
        return rng.choice(("", " ", target[: len(target) // 2]))
    if op < 0.84 and isinstance(target, list) and target:  # an item copied, or a null
        return [*target, rng.choice((None, rng.choice(target)))]
    if op < 0.92:  # nested deep, about the depth limit
        return _deep(rng.randint(max(1, 60 - depth), max(2, 68 - depth)), rng)
    return rng.choice(_TYPES)


def _mutant(seed: Any, rng: random.Random) -> bytes:
    document = seed
    for _ in range(rng.randint(1, 3)):
        path = rng.choice(json_paths(document))
        document = _replace(document, path, _changed(_at(document, path), len(path), rng))
    raw = orjson.dumps(document)
    return raw[: rng.randrange(len(raw))] if rng.random() < 0.03 else raw


def dump(corpus: Path, out: Path, mutants: int) -> None:
    """Every outcome of `map_message` on a fixed set of inputs, one line each (see above)."""
    fixtures = REPO / "tests" / "fixtures" / "fhir"
    inputs = [(corpus / r["path"]).read_bytes() for r in _index(corpus) if r["format"] == "fhir"]
    inputs += [p.read_bytes() for p in sorted(fixtures.rglob("*.json"))]
    inputs += [p.read_bytes() for p in sorted((REPO / "tests/fuzz/corpus/fhir_mapping").glob("*"))]
    seeds = []
    for raw in inputs:
        try:
            seeds.append(orjson.loads(raw))
        except orjson.JSONDecodeError:
            continue
    rng = random.Random(1616)
    inputs += [_mutant(rng.choice(seeds), rng) for _ in range(mutants)]
    many: list[object] = [
        {} for _ in range(500_010)
    ]  # over both limits, the deep part first or last
    inputs += [orjson.dumps({"resourceType": "Bundle", "entry": [_deep(70, rng), many]})]
    inputs += [orjson.dumps({"resourceType": "Bundle", "entry": [many, _deep(70, rng)]})]
    with out.open("w", encoding="utf-8") as lines:
        for number, raw in enumerate(inputs):
            for index, profile in enumerate(_DUMP_PROFILES):
                try:
                    outcome = repr(map_message(raw, profile))
                except MappingError as exc:
                    outcome = f"refused {exc.code} {exc.location}: {str(exc)!r}"
                lines.write(f"{number} {index} {outcome}\n")
    print(f"{len(inputs)} inputs x {len(_DUMP_PROFILES)} profiles written to {out}")


def _index(corpus: Path) -> list[dict[str, str]]:
    with (corpus / "INDEX.tsv").open(newline="", encoding="utf-8") as index:
        return list(csv.DictReader(index, delimiter="\t"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    corpus = os.environ.get("CAREBRIDGE_CORPUS")
    default = Path(corpus) if corpus else REPO.parent / "shared" / "corpus"
    parser.add_argument("--corpus", type=Path, default=default)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dump", type=Path, help="write every outcome here; measure nothing")
    parser.add_argument("--mutants", type=int, default=4000)
    args = parser.parse_args()
    if args.dump is not None:
        dump(args.corpus, args.dump, args.mutants)
        return 0
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
