"""`make check` runs pip-audit against the lock: a known vulnerability fails it; vulnerability
data that cannot be reached skips it with a message that says so, and never passes silently."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tools.audit_deps import verdict

ROOT = Path(__file__).resolve().parents[2]
# A real release with published advisories (CVE-2019-10906 among them), and its real hashes.
VULNERABLE_LOCK = """jinja2==2.10 \\
    --hash=sha256:74c935a1b8bb9a3947c50a54766a969d4846290e1e788ea44c1392163723c3bd \\
    --hash=sha256:f84be1bb0040caca4cea721fcbbbbd61f9be9464ca236387158b0feea01914a4
"""


def _report(*dependencies: dict[str, object]) -> str:
    return json.dumps({"dependencies": list(dependencies), "fixes": []})


def test_a_known_vulnerability_fails_naming_the_package_and_its_fix() -> None:
    report = _report(
        {"name": "aiohttp", "version": "3.14.5", "vulns": []},
        {"name": "jinja2", "version": "2.10",
         "vulns": [{"id": "PYSEC-2019-217", "fix_versions": ["2.10.1"], "aliases": []}]},
    )  # fmt: skip
    result = verdict(1, report, "", 60)
    assert result.code == 1
    assert "jinja2 2.10: PYSEC-2019-217 (fixed in 2.10.1)" in result.message


def test_nothing_found_passes() -> None:
    report = _report({"name": "aiohttp", "version": "3.14.5", "vulns": []})
    result = verdict(0, report, "", 60)
    assert (result.code, result.message) == (0, "pip-audit: no known vulnerabilities in 1 locked "
                                                "packages")  # fmt: skip


def test_every_package_left_unaudited_is_a_skip_not_a_pass() -> None:
    report = _report(
        {"name": "aiohttp", "skip_reason": "Dependency not found on PyPI and could not be audited"},
        {"name": "pika", "skip_reason": "Dependency not found on PyPI and could not be audited"},
    )
    result = verdict(0, report, "", 60)
    assert result.code == 0
    assert result.message.startswith("pip-audit skipped: none of the 2 locked packages")


@pytest.mark.parametrize(
    "stderr",
    [
        "requests.exceptions.ConnectionError: HTTPSConnectionPool(host='pypi.org', port=443)",
        "requests.exceptions.ProxyError: Unable to connect to proxy",
        "NameResolutionError: Failed to resolve 'api.osv.dev'",
    ],
)
def test_unreachable_data_is_skipped_with_the_reason(stderr: str) -> None:
    result = verdict(1, None, f"Traceback ...\n{stderr}\n", 60)
    assert result.code == 0
    assert result.message.startswith("pip-audit skipped: its vulnerability data is unreachable")
    assert stderr in result.message


def test_a_timeout_is_a_skip_and_any_other_failure_fails() -> None:
    assert verdict(None, None, "", 60).message == "pip-audit skipped: no answer within 60 s"
    failed = verdict(2, None, "pip-audit: error: requirement file is malformed\n", 60)
    assert failed.code == 1
    assert "malformed" in failed.message


def _run(lock: Path, cache: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "audit_deps.py"), "--lock", str(lock),
         "--timeout", "120"],
        capture_output=True, text=True, timeout=180,
        env={**os.environ, "XDG_CACHE_HOME": str(cache), **env},
    )  # fmt: skip


def test_the_real_pip_audit_behind_a_dead_proxy_is_skipped(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text(VULNERABLE_LOCK)
    done = _run(lock, tmp_path, HTTPS_PROXY="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9",
                NO_PROXY="", no_proxy="")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("pip-audit skipped: its vulnerability data is unreachable")


def test_the_real_pip_audit_fails_on_a_vulnerable_lock_where_it_can_look(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text(VULNERABLE_LOCK)
    done = _run(lock, tmp_path)
    if done.returncode == 0 and done.stdout.startswith("pip-audit skipped:"):
        pytest.skip(done.stdout.strip())
    assert done.returncode == 1, done.stdout + done.stderr
    assert "jinja2 2.10: " in done.stderr
