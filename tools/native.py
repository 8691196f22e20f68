"""Compile `mappings.hl7v2` with mypyc, for the import to pick up only while it is fresh.

    python tools/native.py build [--mappings DIR] [--or-plain] [--if-stale]
    python tools/native.py status        # what `import mappings.hl7v2` runs, and why; 1 if plain
    python tools/native.py requirements  # the dev lock's entries the build needs (the image's)
    python tools/native.py clean

``build`` copies the `mappings` package to a scratch directory, compiles every module of
`mappings.hl7v2` there as one mypyc group (the same source, checked by mypy with the project's
pydantic plugin; mypyc refuses code that does not type-check), then puts the extension modules
in ``mappings/hl7v2/_native/`` with a manifest naming the SHA-256 of every source file it was
built from and of each compiled file (`mappings.native` says how the import uses it). Builds of
one package take turns (a lock file), and the old build is replaced in one rename.
``--mappings`` is the `mappings` package to build for (default: this checkout's, else the
installed one; the container image builds its installed copy). ``--or-plain``: when the
compiler is missing or fails, record why in the manifest, say so, and exit 0: the engine then
runs the plain Python, and says so when it starts. ``--if-stale``: do nothing when the manifest
already describes today's sources, built or failed (`make test`, `make run`); `make native`
always builds.

It needs a C compiler and Python's headers, and mypy (the dev lock's) in the interpreter.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mappings import native  # noqa: E402

PACKAGE = "hl7v2"
GROUP = f"mappings.{PACKAGE}.{native.DIRECTORY}"
"""The mypyc group: its shared library is ``mappings.hl7v2._native__mypyc``, found on the
package's path like the modules."""
BUILD_NEEDS = (
    "mypy", "mypy-extensions", "typing-extensions", "pathspec", "librt", "ast-serialize",
    "types-pyyaml", "setuptools",
)  # fmt: skip
"""What the build needs beyond the runtime lock: mypy (with mypyc) and what it requires, the
stubs of what `mappings` imports, and setuptools to compile."""
TIMEOUT_SECONDS = 1800
_RETRY = "the source changed during the build; build again"

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


def fresh(mappings: Path) -> str | None:
    """What the manifest says of today's sources, if it describes them (built or failed)."""
    manifest_path = mappings / PACKAGE / native.DIRECTORY / native.MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if not manifest.get("built"):
            if manifest.get("sources") != native.source_digests(mappings):
                return None
            if any(manifest.get(k) != v for k, v in environment().items()):
                return None  # a compiler installed, mypy upgraded since: try again
            return f"the last build of these sources failed: {manifest.get('reason')}"
        if native.built_elsewhere(manifest) is None and (
            native.mismatch(manifest, manifest_path.parent, mappings) is None  # the sources too
        ):
            return "up to date"
    except (OSError, ValueError, AttributeError):
        return None
    return None


def build(mappings: Path) -> dict[str, object]:
    """Compile; return the manifest of the build (raise RuntimeError saying why it failed)."""
    package = mappings / PACKAGE
    modules = modules_of(package)
    sources = native.source_digests(mappings)
    suffix = native.identity()["ext_suffix"]
    with tempfile.TemporaryDirectory(prefix="carebridge-native-") as scratch:
        work = Path(scratch)
        ignore = shutil.ignore_patterns(f"{native.DIRECTORY}*", "__pycache__", "*.so")
        shutil.copytree(mappings, work / "mappings", ignore=ignore)
        (work / "mypy.ini").write_text(_MYPY_CONFIG, encoding="utf-8")
        paths = [f"mappings/{PACKAGE}/{m}.py" for m in modules]
        (work / "modules.json").write_text(json.dumps(paths), encoding="utf-8")
        (work / "setup_native.py").write_text(_SETUP.format(group=GROUP), encoding="utf-8")
        try:
            done = subprocess.run(
                [sys.executable, "setup_native.py"], cwd=work, capture_output=True, text=True,
                errors="replace", env={**os.environ, native.ENV: "0"}, check=False,
                timeout=TIMEOUT_SECONDS,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"mypyc took over {TIMEOUT_SECONDS} s") from exc
        if done.returncode != 0:
            raise RuntimeError("mypyc failed: " + _cause(done.stdout + done.stderr))
        names = [f"{m}{suffix}" for m in [*modules, f"{native.DIRECTORY}__mypyc"]]
        missing = [n for n in names if not (work / "mappings" / PACKAGE / n).is_file()]
        if missing:
            raise RuntimeError(f"mypyc made no {', '.join(missing)}")
        if native.source_digests(mappings) != sources:
            raise RuntimeError(_RETRY)
        built = work / "mappings" / PACKAGE
        manifest: dict[str, object] = {
            "built": True,
            **native.identity(),
            "python": sys.version.split()[0],
            **environment(),
            "compiled": native.file_digests(built, names),
            "sources": sources,
        }
        _install(package, [built / n for n in names], manifest)
    return manifest


def environment() -> dict[str, str]:
    """What a failed build might have lacked: its interpreter, mypy, the C compiler."""
    try:
        mypy = metadata.version("mypy")
    except metadata.PackageNotFoundError:
        mypy = "none"
    compiler = str(sysconfig.get_config_var("CC") or "cc").split()[0]
    return {**native.identity(), "mypy": mypy, "cc": shutil.which(compiler) or "none"}


def _cause(output: str) -> str:
    """The lines of a failed compile that say why (mypy's errors, the compiler's), shortened."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    telling = [line for line in lines if re.search(r"error|Error|No such file|not found", line)]
    chosen = (telling or lines)[-4:]
    return " | ".join(chosen)[:600] or "no output"


def record_failure(mappings: Path, reason: str, *, transient: bool = False) -> None:
    """Leave no compiled module, and a manifest saying why (the engine logs it at start)."""
    manifest: dict[str, object] = {
        "built": False, "reason": " ".join(reason.split())[:800], **environment(),
    }  # fmt: skip
    if not transient:  # else the next `--if-stale` build tries again
        manifest["sources"] = native.source_digests(mappings)
    _install(mappings / PACKAGE, [], manifest)


def _install(package: Path, files: list[Path], manifest: dict[str, object]) -> None:
    """Replace the package's build with `files` and `manifest` in one rename."""
    target = package / native.DIRECTORY
    staging = Path(tempfile.mkdtemp(prefix=f"{native.DIRECTORY}.new-", dir=package))
    staging.chmod(0o755)  # mkdtemp's 0700 would hide the build from the engine's own user
    for path in files:
        shutil.copyfile(path, staging / path.name)
        (staging / path.name).chmod(0o644)
    (staging / native.MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    old = Path(tempfile.mkdtemp(prefix=f"{native.DIRECTORY}.old-", dir=package))
    if target.exists():
        target.rename(old / "build")
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def _remove_leftovers(package: Path) -> None:
    """Staging directories of a build that was killed between its renames."""
    for path in package.glob(f"{native.DIRECTORY}.*-*"):
        shutil.rmtree(path, ignore_errors=True)


def requirements(lock: Path) -> str:
    """The entries of `lock` (a pip-compile lock with hashes) for `BUILD_NEEDS`, whole."""
    text = lock.read_text(encoding="utf-8")
    entries = re.split(r"\n(?=[A-Za-z0-9])", text)
    wanted: dict[str, str] = {}
    for entry in entries:
        pin = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==", entry)
        if pin and pin.group(1).lower().replace("_", "-") in BUILD_NEEDS:
            wanted[pin.group(1).lower()] = entry.rstrip()
    absent = sorted(set(BUILD_NEEDS) - {n.replace("_", "-") for n in wanted})
    if absent:
        raise RuntimeError(f"{lock} does not pin {', '.join(absent)}")
    return "\n".join(wanted[n] for n in sorted(wanted)) + "\n"


def status() -> int:
    import mappings.hl7v2  # noqa: F401  (its import decides)

    state = native.STATUS[f"mappings.{PACKAGE}"]
    print(f"mappings.{PACKAGE}: {'compiled' if state.compiled else 'plain Python'}: {state.reason}")
    return 0 if state.compiled else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("command", choices=["build", "status", "requirements", "clean"])
    parser.add_argument("--mappings", type=Path, default=None)
    parser.add_argument("--lock", type=Path, default=ROOT / "requirements.lock")
    parser.add_argument("--or-plain", action="store_true")
    parser.add_argument("--if-stale", action="store_true")
    args = parser.parse_args(argv)
    mappings = (args.mappings or default_mappings()).resolve()
    if args.command == "status":
        return status()
    if args.command == "requirements":
        sys.stdout.write(requirements(args.lock))
        return 0
    if args.command == "clean":
        shutil.rmtree(mappings / PACKAGE / native.DIRECTORY, ignore_errors=True)
        _remove_leftovers(mappings / PACKAGE)
        return 0
    try:
        with (mappings / PACKAGE / ".native.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one build of this package at a time
            _remove_leftovers(mappings / PACKAGE)
            said = fresh(mappings) if args.if_stale else None
            if said is not None:
                print(f"native: mappings.{PACKAGE}: {said} (make native builds again)")
                return 0
            try:
                manifest = build(mappings)
            except Exception as error:  # any failure: recorded, then said below
                transient = (
                    isinstance(error, OSError) or _RETRY in str(error) or "took over" in str(error)
                )
                record_failure(mappings, str(error), transient=transient)
                raise
    except Exception as error:  # noqa: BLE001
        print(f"native: NOT built, mappings.{PACKAGE} runs as plain Python: {error}",
              file=sys.stderr)  # fmt: skip
        return 0 if args.or_plain else 1
    compiled = manifest["compiled"]
    count = len(compiled) if isinstance(compiled, dict) else 0
    print(f"native: mappings.{PACKAGE} compiled, {count} modules in "
          f"{mappings / PACKAGE / native.DIRECTORY}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
