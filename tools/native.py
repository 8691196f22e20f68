"""Compile `mappings.hl7v2` with mypyc, for the import to pick up only while it is fresh.

    python tools/native.py build [--mappings DIR] [--or-plain]
    python tools/native.py status      # what `import mappings.hl7v2` runs, and why; exit 1 if plain
    python tools/native.py clean

``build`` copies the `mappings` package to a scratch directory, compiles every module of
`mappings.hl7v2` there as one mypyc group (the same source, checked by mypy with the project's
pydantic plugin; mypyc refuses code that does not type-check), then puts the extension modules
in ``mappings/hl7v2/_native/`` with a manifest naming the SHA-256 of every source file it was
built from (`mappings.native` says how the import uses it). The old build is replaced in one
rename. ``--mappings`` is the `mappings` package to build for (default: this checkout's, else
the installed one; the container image builds its installed copy). ``--or-plain``: when the
compiler is missing or fails, record why in the manifest, say so, and exit 0: the engine then
runs the plain Python, and says so when it starts. `make` builds with it (`make native`).

It needs a C compiler and Python's headers, and mypy (the dev lock's) in the interpreter.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mappings import native  # noqa: E402

PACKAGE = "hl7v2"
GROUP = f"mappings.{PACKAGE}.{native.DIRECTORY}"
"""The mypyc group: its shared library is ``mappings.hl7v2._native__mypyc``, found on the
package's path like the modules."""

_MYPY_CONFIG = "[mypy]\npython_version = 3.11\nplugins = pydantic.mypy\n"
_SETUP = """\
import json, sys
from setuptools import setup
from mypyc.build import mypycify
paths = json.load(open("modules.json"))
setup(name="carebridge-native", script_args=["build_ext", "--inplace"],
      ext_modules=mypycify(["--config-file", "mypy.ini", *paths], group_name={group!r},
                           opt_level="3"))
"""


def default_mappings() -> Path:
    here = ROOT / "mappings"
    if (here / "__init__.py").is_file():
        return here
    import mappings

    return Path(mappings.__file__).resolve().parent


def modules_of(package: Path) -> list[str]:
    return sorted(p.stem for p in package.glob("*.py") if p.name != "__init__.py")


def build(mappings: Path) -> dict[str, object]:
    """Compile; return the manifest of the build (raise RuntimeError saying why it failed)."""
    package = mappings / PACKAGE
    modules = modules_of(package)
    sources = native.source_digests(mappings)
    suffix = native.identity()["ext_suffix"]
    with tempfile.TemporaryDirectory(prefix="carebridge-native-") as scratch:
        work = Path(scratch)
        shutil.copytree(
            mappings,
            work / "mappings",
            ignore=shutil.ignore_patterns(native.DIRECTORY, "__pycache__", "*.so"),
        )
        (work / "mypy.ini").write_text(_MYPY_CONFIG, encoding="utf-8")
        (work / "modules.json").write_text(
            json.dumps([f"mappings/{PACKAGE}/{m}.py" for m in modules]), encoding="utf-8"
        )
        (work / "setup_native.py").write_text(_SETUP.format(group=GROUP), encoding="utf-8")
        done = subprocess.run(
            [sys.executable, "setup_native.py"],
            cwd=work,
            capture_output=True,
            text=True,
            env={**os.environ, native.ENV: "0"},
            check=False,
        )
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).strip().splitlines()[-12:]
            raise RuntimeError("mypyc failed:\n  " + "\n  ".join(tail))
        built = [*modules, f"{native.DIRECTORY}__mypyc"]
        missing = [m for m in built if not (work / "mappings" / PACKAGE / f"{m}{suffix}").is_file()]
        if missing:
            raise RuntimeError(f"mypyc made no {', '.join(missing)}")
        if native.source_digests(mappings) != sources:
            raise RuntimeError("the source changed during the build; build again")
        manifest: dict[str, object] = {
            "built": True,
            **native.identity(),
            "modules": built,
            "sources": sources,
        }
        _install(
            package, {m: work / "mappings" / PACKAGE / f"{m}{suffix}" for m in built}, manifest
        )
    return manifest


def record_failure(mappings: Path, reason: str) -> None:
    """Leave no compiled module, and a manifest saying why (the engine logs it at start)."""
    _install(mappings / PACKAGE, {}, {"built": False, "reason": reason.splitlines()[0]})


def _install(package: Path, files: dict[str, Path], manifest: dict[str, object]) -> None:
    target = package / native.DIRECTORY
    fresh = package / f"{native.DIRECTORY}.new"
    old = package / f"{native.DIRECTORY}.old"
    shutil.rmtree(fresh, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)
    fresh.mkdir()
    for path in files.values():
        shutil.copy2(path, fresh / path.name)
    (fresh / native.MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    if target.exists():
        target.rename(old)
    fresh.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def status() -> int:
    import mappings.hl7v2  # noqa: F401  (its import decides)

    state = native.STATUS[f"mappings.{PACKAGE}"]
    print(f"mappings.{PACKAGE}: {'compiled' if state.compiled else 'plain Python'}: {state.reason}")
    return 0 if state.compiled else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["build", "status", "clean"])
    parser.add_argument("--mappings", type=Path, default=None)
    parser.add_argument("--or-plain", action="store_true")
    args = parser.parse_args(argv)
    mappings = (args.mappings or default_mappings()).resolve()
    if args.command == "status":
        return status()
    if args.command == "clean":
        shutil.rmtree(mappings / PACKAGE / native.DIRECTORY, ignore_errors=True)
        return 0
    try:
        manifest = build(mappings)
    except (RuntimeError, OSError) as error:
        record_failure(mappings, str(error))
        print(
            f"native: NOT built, mappings.{PACKAGE} runs as plain Python: {error}", file=sys.stderr
        )
        return 0 if args.or_plain else 1
    modules = manifest["modules"]
    count = len(modules) if isinstance(modules, list) else 0
    print(
        f"native: mappings.{PACKAGE} compiled, {count} modules in "
        f"{mappings / PACKAGE / native.DIRECTORY}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
