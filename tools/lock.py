"""The dependency locks, both made by pip-compile with sha256 hashes for Python 3.11 on Linux:

- ``requirements.lock``: everything ``make`` installs into .venv (the engine's dependencies,
  the ``dev`` extra, the build backend), for ``make check``, ``make run`` and CI;
- ``requirements-runtime.lock``: the engine's dependencies and the build backend only, at the
  same versions, for the container image.

Each lock records a fingerprint of what pyproject.toml asks for (dependencies, every extra,
build requirements, requires-python), so a dependency added to pyproject.toml and not locked
stops ``make`` with the command to run:

    python3 tools/lock.py verify              # exit 1, naming the problem, if a lock is stale
    python3 tools/lock.py compile [--upgrade] # regenerate both (``make lock``)

Standard library only: ``make`` verifies before any virtual environment exists.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LOCK = "requirements.lock"
RUNTIME_LOCK = "requirements-runtime.lock"
STAMP = "# pyproject-sha256: "
LOCK_PYTHON = (3, 11)
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+?)\s*(?:\\|;|$)", re.M)
_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")


def locked_inputs(pyproject_text: str) -> dict[str, Any]:
    """What pyproject.toml asks of the locks."""
    data = tomllib.loads(pyproject_text)
    project = data.get("project", {})
    return {
        "dependencies": sorted(project.get("dependencies", [])),
        "optional-dependencies": {
            k: sorted(v) for k, v in project.get("optional-dependencies", {}).items()
        },
        "build-system": sorted(data.get("build-system", {}).get("requires", [])),
        "requires-python": project.get("requires-python"),
    }


def fingerprint(pyproject_text: str) -> str:
    canonical = json.dumps(locked_inputs(pyproject_text), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lock_text: str) -> dict[str, tuple[str, frozenset[str]]]:
    """Each locked package (normalised name) -> (version, its sha256 hashes)."""
    found: dict[str, tuple[str, frozenset[str]]] = {}
    starts = list(_PIN.finditer(lock_text))
    for i, m in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(lock_text)
        hashes = frozenset(_HASH.findall(lock_text, m.end(), end))
        found[normalise(m.group(1))] = (m.group(2), hashes)
    return found


def recorded_fingerprint(lock_text: str) -> str | None:
    for line in lock_text.splitlines():
        if line.startswith(STAMP):
            return line[len(STAMP) :].split()[0]
    return None


def problems(root: Path = ROOT) -> list[str]:
    """Why the locks cannot be installed for this pyproject.toml (empty: they can)."""
    wanted = fingerprint((root / "pyproject.toml").read_text())
    texts: dict[str, str] = {}
    found: list[str] = []
    for name in (LOCK, RUNTIME_LOCK):
        path = root / name
        if not path.exists():
            found.append(f"{name} is missing")
            continue
        texts[name] = path.read_text()
        if recorded_fingerprint(texts[name]) != wanted:
            found.append(f"{name} was not made from this pyproject.toml's dependencies")
        unhashed = sorted(p for p, (_, h) in pins(texts[name]).items() if not h)
        if unhashed:
            found.append(f"{name}: no hash for {', '.join(unhashed)}")
    if len(texts) == 2:
        full, runtime = pins(texts[LOCK]), pins(texts[RUNTIME_LOCK])
        for package, (version, hashes) in sorted(runtime.items()):
            if full.get(package) != (version, hashes):
                found.append(f"{RUNTIME_LOCK}: {package}=={version} differs from {LOCK}")
    return found


def _stamp(path: Path, pyproject_text: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines = [line for line in lines if not line.startswith(STAMP)]
    stamp = f"{STAMP}{fingerprint(pyproject_text)} (what pyproject.toml asks; tools/lock.py)\n"
    at = next((i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))
    path.write_text("".join([*lines[:at], stamp, *lines[at:]]))


def compile_locks(root: Path = ROOT, *, upgrade: bool = False) -> int:
    if sys.version_info[:2] != LOCK_PYTHON or not sys.platform.startswith("linux"):
        print(
            "tools/lock.py: the locks are made for Python 3.11 on Linux; "
            f"this is Python {sys.version_info[0]}.{sys.version_info[1]} on {sys.platform}",
            file=sys.stderr,
        )
        return 1
    common = ["--generate-hashes", "--all-build-deps", "--allow-unsafe", "--strip-extras"]
    common += ["--no-emit-index-url", "--no-emit-find-links", "--quiet"]
    common += ["--upgrade"] if upgrade else []
    env = {**os.environ, "CUSTOM_COMPILE_COMMAND": "make lock"}
    compile_ = [sys.executable, "-m", "piptools", "compile", *common]
    full, runtime = root / LOCK, root / RUNTIME_LOCK
    subprocess.run([*compile_, "--extra", "dev", "-o", LOCK, "pyproject.toml"],
                   cwd=root, env=env, check=True)  # fmt: skip
    # The runtime lock starts from the full one, so pip-compile keeps its versions.
    shutil.copyfile(full, runtime)
    subprocess.run([*compile_, "-o", RUNTIME_LOCK, "pyproject.toml"],
                   cwd=root, env=env, check=True)  # fmt: skip
    pyproject_text = (root / "pyproject.toml").read_text()
    for path in (full, runtime):
        _stamp(path, pyproject_text)
    left = problems(root)
    for problem in left:
        print(f"tools/lock.py: {problem}", file=sys.stderr)
    return 1 if left else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/lock.py", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("verify", help="exit 1 unless both locks were made from pyproject.toml")
    compiler = sub.add_parser("compile", help="regenerate both locks (make lock)")
    compiler.add_argument("--upgrade", action="store_true", help="newest allowed versions")
    args = parser.parse_args(argv)
    if args.command == "compile":
        return compile_locks(upgrade=args.upgrade)
    found = problems()
    for problem in found:
        print(f"tools/lock.py: {problem}", file=sys.stderr)
    if found:
        print("tools/lock.py: run `make lock` and commit both lock files", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
