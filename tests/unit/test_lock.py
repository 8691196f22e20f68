"""Reproducible installs: .venv (make check, make run, CI) and the container image install every
dependency from a lock with hashes, then the project with no dependencies of its own; the locks
agree with pyproject.toml; the image's base is pinned by digest."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from tools import lock

ROOT = Path(__file__).resolve().parents[2]
MARKER_ENV = {"python_version": "3.11", "python_full_version": "3.11.7", "sys_platform": "linux",
              "platform_system": "Linux", "os_name": "posix", "extra": ""}  # fmt: skip


def _pyproject() -> str:
    return (ROOT / "pyproject.toml").read_text()


def _pins(name: str) -> dict[str, tuple[str, frozenset[str]]]:
    return lock.pins((ROOT / name).read_text())


def test_both_locks_are_made_from_this_pyproject_with_a_hash_for_every_pin() -> None:
    assert lock.problems(ROOT) == [], "run `make lock` and commit both lock files"


def test_a_dependency_added_to_pyproject_but_not_locked_is_refused(tmp_path: Path) -> None:
    for name in ("pyproject.toml", lock.LOCK, lock.RUNTIME_LOCK):
        shutil.copy(ROOT / name, tmp_path / name)
    added = 'dependencies = [\n    "mesh-client>=3",\n'
    (tmp_path / "pyproject.toml").write_text(_pyproject().replace("dependencies = [\n", added, 1))
    found = lock.problems(tmp_path)
    assert f"{lock.LOCK} was not made from this pyproject.toml's dependencies" in found
    assert f"{lock.RUNTIME_LOCK} was not made from this pyproject.toml's dependencies" in found


def test_a_runtime_pin_that_differs_from_the_full_lock_is_refused(tmp_path: Path) -> None:
    for name in ("pyproject.toml", lock.LOCK, lock.RUNTIME_LOCK):
        shutil.copy(ROOT / name, tmp_path / name)
    runtime = tmp_path / lock.RUNTIME_LOCK
    version = _pins(lock.RUNTIME_LOCK)["aiohttp"][0]
    runtime.write_text(runtime.read_text().replace(f"aiohttp=={version}", "aiohttp==3.9.0"))
    assert f"{lock.RUNTIME_LOCK}: aiohttp==3.9.0 differs from {lock.LOCK}" in lock.problems(
        tmp_path
    )


def _declared(*groups: str) -> list[Requirement]:
    inputs = lock.locked_inputs(_pyproject())
    found = []
    for group in groups:
        if group == "dependencies":
            found += inputs["dependencies"]
        elif group == "build-system":
            found += inputs["build-system"]
        else:
            found += inputs["optional-dependencies"][group]
    return [Requirement(r) for r in found]


@pytest.mark.parametrize(
    ("lock_file", "groups"),
    [
        (lock.LOCK, ("dependencies", "dev", "build-system")),
        (lock.RUNTIME_LOCK, ("dependencies", "build-system")),
    ],
)
def test_every_declared_requirement_is_pinned_at_a_version_it_allows(
    lock_file: str, groups: tuple[str, ...]
) -> None:
    pins = _pins(lock_file)
    for requirement in _declared(*groups):
        if requirement.marker is not None and not requirement.marker.evaluate(MARKER_ENV):
            continue
        name = lock.normalise(requirement.name)
        assert name in pins, f"{requirement} is not in {lock_file}"
        assert Version(pins[name][0]) in requirement.specifier, f"{lock_file}: {name}"


def test_the_lock_holds_every_tool_make_check_runs() -> None:
    pins = _pins(lock.LOCK)
    for tool in ("pytest", "pytest-asyncio", "mypy", "ruff", "import-linter", "selenium", "hl7",
                 "types-pyyaml", "pip-audit", "pip-tools", "setuptools", "wheel"):  # fmt: skip
        assert tool in pins, tool
    runtime = _pins(lock.RUNTIME_LOCK)
    assert not {"pytest", "mypy", "selenium", "pip-audit"} & set(runtime)


def _recipe(makefile: str, target: str) -> list[str]:
    match = re.search(rf"^{re.escape(target)}:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert match is not None, target
    return match.group(1).splitlines()


def test_make_installs_the_venv_from_the_lock_with_hashes_then_the_project_without_deps() -> None:
    makefile = (ROOT / "Makefile").read_text()
    recipe = _recipe(makefile, "$(STAMP)")
    installs = [line.strip() for line in recipe if "pip install" in line]
    assert installs == [
        "$(BIN)/pip install --quiet --require-hashes -r $(LOCK)",
        "$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .",
    ]
    assert re.search(r"^LOCK\s*:=\s*requirements\.lock$", makefile, re.M)
    assert any("tools/lock.py verify" in line for line in recipe)
    assert re.search(r"^check:.*\bpip-audit\b", makefile, re.M)
    assert any("tools/lock.py compile" in line for line in _recipe(makefile, "lock"))
    assert re.search(r"^make check$", (ROOT / ".ci" / "run").read_text(), re.M)


def test_the_image_installs_from_the_runtime_lock_on_a_base_pinned_by_digest() -> None:
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    froms = re.findall(r"^FROM (.+)$", dockerfile, re.M)
    assert froms == [froms[0], "base AS native", "base"], froms
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64} AS base", froms[0])
    base, native, image = re.split(r"^FROM .+$", dockerfile, flags=re.M)[1:]
    assert re.findall(r"pip install [^&\n]*", base) == [
        f"pip install --no-cache-dir --require-hashes -r {lock.RUNTIME_LOCK}",
        "pip install --no-cache-dir --no-deps --no-build-isolation . ",
    ]
    assert f"COPY {lock.RUNTIME_LOCK} ./" in base
    assert "docker buildx imagetools inspect" in (ROOT / "docs" / "deploy.md").read_text()
    # The compiled mapping: built in its own stage from the dev lock (mypy) with a compiler, for
    # the installed copy of `mappings`; only its output reaches the image, which checks it runs.
    assert re.findall(r"pip install [^&\n]*", native) == [
        "pip install --no-cache-dir --require-hashes -r /tmp/native.lock"
    ]
    assert f"tools/native.py requirements --lock {lock.LOCK} > /tmp/native.lock" in native
    assert "gcc" in native
    assert "gcc" not in base + image
    assert "pip install" not in image
    installed = re.search(r"tools/native\.py build --mappings (\S+)$", native, re.M)
    assert installed is not None
    assert (
        f"COPY --from=native {installed.group(1)}/hl7v2/_native \\\n  {installed.group(1)}" in image
    )
    assert "assert s.compiled, s.reason" in image
    assert image.index("USER carebridge") < image.index("assert s.compiled")  # as the engine's user
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert "**/_native" in ignored  # this machine's build never reaches the image


def test_the_locks_are_made_for_python_3_11() -> None:
    assert lock.LOCK_PYTHON == (3, 11)
    for name in (lock.LOCK, lock.RUNTIME_LOCK):
        assert "autogenerated by pip-compile with Python 3.11" in (ROOT / name).read_text()
