"""The compiled build of a mapping package, used only where it is exactly today's source.

`tools/native.py build` compiles every module of `mappings.hl7v2` with mypyc (the same Python,
no rewrite: about twice as fast, issue 16 point 6) into the package's ``_native/`` directory and
writes ``_native/manifest.json``: the interpreter's extension suffix, the pydantic version, the
SHA-256 of each compiled file and of every ``.py`` file of `mappings` (compiled code also
carries what the type checker knew of the modules it imports, such as `mappings.model`, so a
change anywhere in `mappings` makes the build stale).

A package's ``__init__`` calls `attach` before any of its modules is imported. The compiled
directory goes first on the package's ``__path__`` only when the manifest matches the source,
the interpreter and pydantic; otherwise the package runs as plain Python, as before, and
`STATUS` says why. Nothing here ever runs a stale build: an edited source file is always what
runs, compiled or not. ``CAREBRIDGE_NATIVE=0`` (or false, off, no) turns the compiled build off
(the coverage-guided fuzzers need the Python, which they can instrument).

Compiled modules bind their calls to each other when built: a test that monkeypatches a function
or constant inside `mappings.hl7v2` changes nothing there; such a test needs the plain Python
(``CAREBRIDGE_NATIVE=0`` before the import).

The compiled and the plain build map every input to the same outcome: tests/unit/test_native.py
compares the two on every corpus file, fixture, fuzz seed and 12,000 mutants.
"""

from __future__ import annotations

import hashlib
import json
import os
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pydantic

ENV = "CAREBRIDGE_NATIVE"
"""Set to ``0`` to run the plain Python even where a fresh compiled build exists."""
DIRECTORY = "_native"
MANIFEST = "manifest.json"
ROOT = Path(__file__).resolve().parent
"""The `mappings` package: every ``.py`` under it is part of a build's identity."""


@dataclass(frozen=True)
class NativeStatus:
    package: str
    compiled: bool
    reason: str
    """Why not, or what: short, for the engine's start-up log line and `tools/native.py`."""


STATUS: dict[str, NativeStatus] = {}
"""Per package that called `attach`: whether it runs compiled, and why (not)."""


def source_digests(root: Path = ROOT) -> dict[str, str]:
    """SHA-256 of every ``.py``/``.pyi`` file under `root` (symbolic links followed), by path
    relative to it (``/``-separated)."""
    digests: dict[str, str] = {}
    for folder, subfolders, files in os.walk(root, followlinks=True):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith(DIRECTORY))
        for name in files:
            if name.endswith((".py", ".pyi")):
                path = Path(folder) / name
                relative = path.relative_to(root).as_posix()
                digests[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return dict(sorted(digests.items()))


def file_digests(directory: Path, names: list[str]) -> dict[str, str]:
    """SHA-256 of each named file in `directory` (the compiled modules of a build)."""
    return {n: hashlib.sha256((directory / n).read_bytes()).hexdigest() for n in sorted(names)}


def identity() -> dict[str, str]:
    """What a build must have been made for, besides the source: the interpreter's ABI."""
    return {
        "ext_suffix": str(sysconfig.get_config_var("EXT_SUFFIX")),
        "pydantic": pydantic.VERSION,
    }


def attach(package: str, path: list[str]) -> NativeStatus:
    """Put the package's compiled build first on its `path`, if it is exactly today's source."""
    directory = Path(path[0]) / DIRECTORY
    try:
        reason = _stale(directory)
    except (OSError, ValueError) as error:  # an unreadable or broken manifest: plain Python
        reason = f"{MANIFEST} unreadable: {type(error).__name__}"
    if reason is None:
        path.insert(0, str(directory))
        status = NativeStatus(package, True, f"compiled build in {directory}")
    else:
        status = NativeStatus(package, False, reason)
    STATUS[package] = status
    return status


def _stale(directory: Path) -> str | None:
    """Why the build in `directory` must not run, or None when it matches."""
    if os.environ.get(ENV, "1").strip().lower() in _OFF:
        return f"turned off ({ENV}={os.environ[ENV]})"
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        return "not built (make native)"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if not isinstance(manifest, dict):
        raise ValueError("not an object")
    if not manifest.get("built"):
        return f"build failed: {manifest.get('reason', 'no reason recorded')}"
    return built_elsewhere(manifest) or mismatch(manifest, directory)


def built_elsewhere(manifest: dict[str, object]) -> str | None:
    """Why the build `manifest` describes was made for another interpreter or pydantic, or None."""
    for key, value in identity().items():
        if manifest.get(key) != value:
            return f"built for {key} {manifest.get(key)!r}, this is {value!r}"
    return None


_OFF = ("0", "false", "off", "no")


def mismatch(manifest: dict[str, object], directory: Path, root: Path = ROOT) -> str | None:
    """Why the build `manifest` describes is not exactly today's: its sources, or the compiled
    files in `directory` it names (a build whose own files were replaced is stale too)."""
    built = manifest.get("sources")
    if not isinstance(built, dict):
        raise ValueError("no sources")
    now = source_digests(root)
    changed = sorted(name for name in built.keys() | now.keys() if built.get(name) != now.get(name))
    if changed:
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        return f"source changed since the build: {', '.join(changed[:3])}{more}"
    compiled = manifest.get("compiled")
    if not isinstance(compiled, dict) or not compiled:
        raise ValueError("no compiled modules")
    missing = sorted(str(n) for n in compiled if not (directory / str(n)).is_file())
    if missing:
        return f"compiled module missing: {', '.join(missing)}"
    if file_digests(directory, [str(n) for n in compiled]) != compiled:
        return "compiled modules differ from the build's manifest"
    return None
