"""`bench/end_to_end.py --compare REV` must run REV's code: the command it builds for another
tree imports that tree's packages even when started from this repository, whose own `engine`
would otherwise come first on the path (and the comparison would be of this build with itself)."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

from bench.end_to_end import ROOT, tree_command


def test_the_other_tree_s_code_is_imported_when_run_from_this_repository(tmp_path: Path) -> None:
    (tmp_path / "engine").mkdir()
    (tmp_path / "engine" / "__init__.py").write_text("WHICH = 'the other tree'\n")
    command = tree_command(tmp_path, "import engine; print(engine.__file__)")
    out = subprocess.run(shlex.split(command), cwd=ROOT, capture_output=True, text=True,
                         check=True, timeout=60).stdout  # fmt: skip
    assert Path(out.strip()) == tmp_path / "engine" / "__init__.py"
