"""How `carebridge test` reports: a readable line per case (with each failed expectation under
it), a closing count, and JUnit XML for a team's CI."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from engine.routetest.runner import CaseResult


@dataclass(slots=True)
class FileResult:
    path: Path
    cases: list[CaseResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """The file itself is broken (`path: reason` lines); its cases did not run."""


def print_results(results: Sequence[FileResult], out: TextIO) -> None:
    for result in results:
        print(str(result.path), file=out)
        for problem in result.problems:
            print(f"  BROKEN  {problem}", file=out)
        for case in result.cases:
            if case.passed:
                print(f"  PASS  {case.name}", file=out)
                continue
            print(f"  {'ERROR' if case.error else 'FAIL'}  {case.name}", file=out)
            for line in [case.error] if case.error else case.failures:
                print(f"        {line}", file=out)
    print(summary(results), file=out)


def summary(results: Sequence[FileResult]) -> str:
    cases = [c for r in results for c in r.cases]
    passed = sum(c.passed for c in cases)
    errors = sum(c.error is not None for c in cases)
    line = f"{passed} passed, {len(cases) - passed - errors} failed"
    if errors:
        line += f", {errors} broken case{'s' if errors > 1 else ''}"
    if broken := sum(bool(r.problems) for r in results):
        line += f", {broken} broken test file{'s' if broken > 1 else ''}"
    return line


def write_junit(results: Sequence[FileResult], path: Path) -> None:
    root = ET.Element("testsuites", name="carebridge test")
    for result in results:
        suite = ET.SubElement(root, "testsuite", name=str(result.path))
        failed = errors = 0
        for problem in result.problems:
            errors += 1
            case = ET.SubElement(suite, "testcase", name="(test file)", classname=str(result.path))
            ET.SubElement(case, "error", message=problem).text = problem
        for outcome in result.cases:
            case = ET.SubElement(
                suite,
                "testcase",
                name=outcome.name,
                classname=str(result.path),
                time=f"{outcome.seconds:.3f}",
            )
            if outcome.error:
                errors += 1
                ET.SubElement(case, "error", message=outcome.error).text = outcome.error
            elif outcome.failures:
                failed += 1
                text = "\n".join(outcome.failures)
                ET.SubElement(case, "failure", message=outcome.failures[0]).text = text
        total = len(result.cases) + len(result.problems)
        suite.set("tests", str(total))
        suite.set("failures", str(failed))
        suite.set("errors", str(errors))
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
