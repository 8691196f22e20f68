"""`carebridge test`: YAML test files beside the config, run against the real config with no
broker, store or network (`spec` the file format, `runner` one case, `report` text and JUnit).

Exit codes: 0 every case passed; 1 a case failed; 2 a test file (or its config) is broken.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from engine.config import Config, ConfigError
from engine.routetest.report import FileResult, print_results, summary, write_junit
from engine.routetest.runner import CaseResult, run_case
from engine.routetest.spec import SpecError, load_test_file

EXIT_PASSED, EXIT_FAILED, EXIT_BROKEN = 0, 1, 2
ConfigLoader = Callable[[Path], Config]

__all__ = ["CaseResult", "FileResult", "collect_files", "run_test_files", "summary"]


def collect_files(paths: Sequence[Path]) -> list[Path]:
    """The test files named, with every *.yaml / *.yml under a named folder, in order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml"))
        else:
            found.append(path)
    return found


def run_file(path: Path, config_path: Path | None, load: ConfigLoader) -> FileResult:
    result = FileResult(path)
    try:
        spec = load_test_file(path)
    except SpecError as exc:
        result.problems = exc.problems
        return result
    chosen = config_path or (path.parent / spec.config if spec.config else None)
    if chosen is None:
        result.problems = [f"{path}: config: none given (write config: in the file, or use -c)"]
        return result
    try:
        config = load(chosen)
    except ConfigError as exc:
        result.problems = [f"{chosen}: {problem}" for problem in exc.problems]
        return result
    result.cases = [run_case(case, config, path.parent) for case in spec.tests]
    return result


def run_test_files(
    paths: Sequence[Path],
    *,
    config_path: Path | None,
    load: ConfigLoader,
    junit: Path | None = None,
    out: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    files = collect_files(paths)
    if not files:
        print(f"no test files in {', '.join(map(str, paths))}", file=out)
        return EXIT_BROKEN
    results = [run_file(path, config_path, load) for path in files]
    print_results(results, out)
    if junit is not None:
        write_junit(results, junit)
    if any(r.problems or any(c.error for c in r.cases) for r in results):
        return EXIT_BROKEN
    return EXIT_FAILED if any(not c.passed for r in results for c in r.cases) else EXIT_PASSED
