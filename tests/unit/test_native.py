"""The compiled build of `mappings.hl7v2` (tools/native.py, mappings/native.py).

It runs only while it is exactly today's source, interpreter and pydantic: each way a build can
go stale is tried on a copy of the package in a fresh interpreter, and must fall back to the
plain Python and say why. And the compiled and the plain build map every input alike: every
outcome of `bench/hl7v2_mapping.py --dump` (corpus, fixtures, fuzz seeds, 12,000 mutants, five
profiles) is compared. CI (``CI=true``) builds it with `make`: there a missing build fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import mappings.hl7v2.stay
from mappings import native
from mappings.inbound import map_message
from mappings.profile import FeedProfile
from tests.adt_factory import adt, patients
from tools import lock
from tools import native as native_tool

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "mappings" / "hl7v2" / native.DIRECTORY
STATE = native.STATUS["mappings.hl7v2"]
SUFFIX = native.identity()["ext_suffix"]


def _need_build() -> None:
    if STATE.compiled:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI runs `make`, which builds mappings.hl7v2; it runs plain: {STATE.reason}")
    pytest.skip(f"mappings.hl7v2 is not compiled here ({STATE.reason}); `make native`")


def test_the_status_says_what_really_runs() -> None:
    where = mappings.hl7v2.stay.__file__ or ""
    if STATE.compiled:
        assert where.endswith(SUFFIX)
        assert f"/{native.DIRECTORY}/" in where
    else:
        assert where.endswith("stay.py")
    _need_build()


def _import_in(root: Path, **env: str) -> dict[str, object]:
    """Import mappings.hl7v2 from the copy at `root` in a fresh interpreter; what it chose."""
    script = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(root)!r})\n"
        "import mappings.hl7v2.stay as stay\n"
        "from mappings import native\n"
        "state = native.STATUS['mappings.hl7v2']\n"
        "print(json.dumps({'compiled': state.compiled, 'reason': state.reason,"
        " 'file': stay.__file__, 'mappings': native.__file__}))\n"
    )
    environment = {k: v for k, v in os.environ.items() if k != native.ENV}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120,
        env={**environment, **env}, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    chosen: dict[str, object] = json.loads(done.stdout)
    assert str(chosen["mappings"]).startswith(str(root)), chosen  # the copy, not the checkout
    return chosen


def _append(relative: str, text: bytes) -> Callable[[Path], None]:
    def change(root: Path) -> None:
        path = root / "mappings" / relative
        path.write_bytes((path.read_bytes() if path.exists() else b"") + text)

    return change


def _edit_manifest(key: str, value: object) -> Callable[[Path], None]:
    def change(root: Path) -> None:
        path = root / "mappings" / "hl7v2" / native.DIRECTORY / native.MANIFEST
        manifest = json.loads(path.read_text())
        manifest[key] = value
        path.write_text(json.dumps(manifest))

    return change


def _delete_module(root: Path) -> None:
    (root / "mappings" / "hl7v2" / native.DIRECTORY / f"types{SUFFIX}").unlink()


def _replace_module(root: Path) -> None:
    build = root / "mappings" / "hl7v2" / native.DIRECTORY
    (build / f"types{SUFFIX}").write_bytes((build / f"stay{SUFFIX}").read_bytes())


def _edit_through_a_link(root: Path) -> None:
    """The package is a symbolic link to its real folder; a module is edited there."""
    package = root / "mappings" / "hl7v2"
    package.rename(root / "hl7v2-real")
    package.symlink_to(root / "hl7v2-real", target_is_directory=True)
    _append("hl7v2/stay.py", b"\n# edited\n")(root)


def _break_manifest(root: Path) -> None:
    (root / "mappings" / "hl7v2" / native.DIRECTORY / native.MANIFEST).write_text("{not json")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of `mappings` compiled where it lies, as the image does for its installed copy."""
    if shutil.which("cc") is None and not os.environ.get("CI"):
        pytest.skip("no C compiler here")
    root = tmp_path_factory.mktemp("site")
    shutil.copytree(REPO / "mappings", root / "mappings",
                    ignore=shutil.ignore_patterns("__pycache__", native.DIRECTORY))  # fmt: skip
    done = subprocess.run(
        [sys.executable, str(REPO / "tools" / "native.py"), "build", "--mappings",
         str(root / "mappings")],
        cwd="/", capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^native: mappings.hl7v2 compiled, \d+ modules in ", done.stdout), done.stdout
    return root


@pytest.fixture
def copy(built: Path, tmp_path: Path) -> Path:
    shutil.copytree(built / "mappings", tmp_path / "mappings")
    return tmp_path


def test_a_fresh_copy_of_the_build_runs_compiled(copy: Path) -> None:
    chosen = _import_in(copy)
    assert chosen["compiled"] is True, chosen
    assert str(chosen["file"]).endswith(SUFFIX), chosen


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (_append("hl7v2/stay.py", b"\n# edited\n"), "source changed since the build: hl7v2/st"),
        (_append("model.py", b"\n"), "source changed since the build: model.py"),
        (_append("fhir/new_module.py", b""), "fhir/new_module.py"),
        (_edit_manifest("ext_suffix", ".cpython-312-x86_64-linux-gnu.so"), "built for ext_suffix"),
        (_edit_manifest("pydantic", "1.10.0"), "built for pydantic"),
        (_edit_manifest("built", False), "build failed"),
        (_delete_module, "compiled module missing: types"),
        (_replace_module, "compiled modules differ from the build's manifest"),
        (_edit_through_a_link, "source changed since the build: hl7v2/stay.py"),
        (_break_manifest, "manifest.json unreadable"),
    ],
    ids=["module-edited", "model-edited", "module-added", "other-python", "other-pydantic",
         "failed-build", "module-missing", "module-replaced", "edited-through-a-link",
         "broken-manifest"],
)  # fmt: skip
def test_a_stale_build_never_runs(copy: Path, change: Callable[[Path], None], why: str) -> None:
    change(copy)
    chosen = _import_in(copy)
    assert chosen["compiled"] is False, chosen
    assert why in str(chosen["reason"]), chosen
    assert str(chosen["file"]).endswith("stay.py"), chosen


def test_a_failed_build_is_said_and_leaves_the_python_running(copy: Path) -> None:
    stay = copy / "mappings" / "hl7v2" / "stay.py"
    stay.write_text(stay.read_text() + "\nBROKEN: int = 'not an int'\n")  # mypyc refuses it
    command = [sys.executable, str(REPO / "tools" / "native.py"), "build", "--mappings",
               str(copy / "mappings")]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "native: NOT built, mappings.hl7v2 runs as plain Python: mypyc failed" in done.stderr
    assert not list((copy / "mappings" / "hl7v2" / native.DIRECTORY).glob(f"*{SUFFIX}"))
    chosen = _import_in(copy)
    assert chosen["compiled"] is False, chosen
    assert str(chosen["reason"]).startswith("build failed: mypyc failed"), chosen
    lenient = subprocess.run([*command, "--or-plain"], capture_output=True, text=True, timeout=600)
    assert lenient.returncode == 0, lenient.stdout + lenient.stderr  # what `make` runs


def test_it_can_be_turned_off(copy: Path) -> None:
    for off in ("0", "false", "OFF"):
        chosen = _import_in(copy, **{native.ENV: off})
        assert chosen == {**chosen, "compiled": False, "reason": f"turned off ({native.ENV}={off})"}
        assert str(chosen["file"]).endswith("stay.py"), chosen


def test_make_builds_again_only_when_the_sources_changed(
    copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mappings = copy / "mappings"
    assert native_tool.fresh(mappings) == "up to date"
    _append("hl7v2/stay.py", b"\n# edited\n")(copy)
    assert native_tool.fresh(mappings) is None  # `make test` builds again
    native_tool.record_failure(mappings, "mypyc failed: error: no compiler")
    said = native_tool.fresh(mappings)  # the same sources failed: not again until `make native`
    assert said == "the last build of these sources failed: mypyc failed: error: no compiler"
    later = {**native_tool.environment(), "cc": "/usr/bin/gcc-installed-since"}
    monkeypatch.setattr(native_tool, "environment", lambda: later)
    assert native_tool.fresh(mappings) is None  # a compiler installed since: again
    monkeypatch.undo()
    native_tool.record_failure(mappings, native_tool._RETRY, transient=True)
    assert native_tool.fresh(mappings) is None  # a build the sources changed under: again
    (mappings / "hl7v2" / f"{native.DIRECTORY}.new-killed").mkdir()  # a build killed mid-way
    native_tool._remove_leftovers(mappings / "hl7v2")
    assert not list((mappings / "hl7v2").glob(f"{native.DIRECTORY}.*"))


def test_compiled_and_plain_map_every_input_alike(tmp_path: Path) -> None:
    _need_build()
    corpus = Path(os.environ.get("CAREBRIDGE_CORPUS") or REPO.parent / "shared" / "corpus")
    if not (corpus / "INDEX.tsv").is_file():
        pytest.skip(f"no corpus at {corpus}")
    dumps = {}
    for label, switch in (("compiled", "1"), ("plain Python", "0")):
        out = tmp_path / f"{switch}.txt"
        done = subprocess.run(
            [sys.executable, str(REPO / "bench" / "hl7v2_mapping.py"), "--corpus", str(corpus),
             "--dump", str(out)],
            cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
            env={**os.environ, native.ENV: switch},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.startswith(f"mappings.hl7v2 {label} ("), done.stdout
        dumps[label] = out.read_text(encoding="utf-8").splitlines()
    compiled, plain = dumps["compiled"], dumps["plain Python"]
    assert len(plain) > 50_000
    differ = [(a, b) for a, b in zip(compiled, plain, strict=True) if a != b]
    assert not differ, differ[:3]


def test_a_bytearray_or_memoryview_maps_as_its_bytes() -> None:
    # The compiled reader takes `bytes` only (mypyc checks its arguments' types at run time).
    raw = adt("A03", patients(1)[0], "CTRL1", datetime(2026, 12, 5, 9, 30, tzinfo=UTC))
    profile = FeedProfile(feed="t")
    expected = map_message(raw, profile)
    assert map_message(bytearray(raw), profile) == expected  # type: ignore[arg-type]
    assert map_message(memoryview(raw), profile) == expected  # type: ignore[arg-type]


def test_the_image_installs_only_what_the_build_needs_pinned_and_hashed() -> None:
    subset = native_tool.requirements(REPO / lock.LOCK)
    pinned = lock.pins(subset)
    assert set(pinned) == set(native_tool.BUILD_NEEDS), pinned.keys()
    assert all(hashes for _, hashes in pinned.values())
    dev = lock.pins((REPO / lock.LOCK).read_text())
    assert all(dev[name] == pin for name, pin in pinned.items())
    runtime = lock.pins((REPO / lock.RUNTIME_LOCK).read_text())
    # Everything these packages require (here, on Linux, Python 3.11) is in one lock or the other.
    for name in native_tool.BUILD_NEEDS:
        for requirement in metadata.requires(name) or []:
            wanted = Requirement(requirement)
            if wanted.marker is not None and not wanted.marker.evaluate({"extra": ""}):
                continue
            assert lock.normalise(wanted.name) in pinned.keys() | runtime.keys(), (name, wanted)
