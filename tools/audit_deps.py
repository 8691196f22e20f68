"""Known vulnerabilities in the locked dependencies: pip-audit against requirements.lock.

    python3 tools/audit_deps.py [--lock FILE] [--timeout SECONDS] [--pip-audit EXE]

Exit 0 when pip-audit found nothing, and also when it could not reach its vulnerability data
(no network, a proxy refusing it, a timeout, or every package left unaudited): then it prints
a line starting ``pip-audit skipped:`` that says why. Exit 1 when a locked package has a known
vulnerability (each one named with the versions that fix it) or pip-audit failed for another
reason (a lock it cannot read).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_NETWORK_ERRORS = (
    "ConnectionError",
    "ProxyError",
    "ConnectTimeout",
    "ReadTimeout",
    "Timeout",
    "NameResolutionError",
    "MaxRetryError",
    "SSLError",
    "Temporary failure in name resolution",
    "Network is unreachable",
)


@dataclass(frozen=True)
class Verdict:
    code: int
    message: str


def verdict(returncode: int | None, report: str | None, stderr: str, timeout: float) -> Verdict:
    """What a pip-audit run means: its exit code (None: stopped at the timeout), the JSON
    report if it wrote one, and its standard error."""
    if returncode is None:
        return Verdict(0, f"pip-audit skipped: no answer within {timeout:g} s")
    if report is None:
        last = next((ln for ln in reversed(stderr.strip().splitlines()) if ln.strip()), "")
        if any(marker in stderr for marker in _NETWORK_ERRORS):
            return Verdict(0, f"pip-audit skipped: its vulnerability data is unreachable ({last})")
        return Verdict(1, f"pip-audit failed (exit {returncode}): {last or 'no output'}")
    dependencies = json.loads(report).get("dependencies", [])
    vulnerable = [
        f"{d['name']} {d.get('version', '?')}: {v['id']}"
        + (f" (fixed in {', '.join(v['fix_versions'])})" if v.get("fix_versions") else "")
        for d in dependencies
        for v in d.get("vulns", [])
    ]
    if vulnerable:
        listed = "\n  ".join(vulnerable)
        return Verdict(1, f"pip-audit: {len(vulnerable)} known vulnerabilities:\n  {listed}")
    skipped = [d["name"] for d in dependencies if "skip_reason" in d]
    if dependencies and len(skipped) == len(dependencies):
        return Verdict(
            0,
            f"pip-audit skipped: none of the {len(skipped)} locked packages could be looked "
            "up in its vulnerability data (its service did not answer for them)",
        )
    audited = len(dependencies) - len(skipped)
    note = f"; not audited: {', '.join(skipped)}" if skipped else ""
    return Verdict(0, f"pip-audit: no known vulnerabilities in {audited} locked packages{note}")


def run(lock: Path, timeout: float, exe: str) -> Verdict:
    with tempfile.TemporaryDirectory(prefix="cb-pip-audit-") as folder:
        out = Path(folder) / "report.json"
        argv = [exe, "-r", str(lock), "--require-hashes", "--disable-pip"]
        argv += ["--progress-spinner", "off", "-f", "json", "-o", str(out)]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return verdict(None, None, "", timeout)
        report = out.read_text() if out.exists() and out.stat().st_size else None
        return verdict(done.returncode, report, done.stderr, timeout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools/audit_deps.py", description=__doc__)
    parser.add_argument("--lock", type=Path, default=ROOT / "requirements.lock")
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument("--pip-audit", dest="exe", help="default: the one beside this Python")
    args = parser.parse_args(argv)
    exe = args.exe or shutil.which("pip-audit", path=str(Path(sys.executable).parent))
    if exe is None:
        print("pip-audit is not installed beside this Python (make .venv/.installed)")
        return 1
    result = run(args.lock, args.timeout, exe)
    print(result.message, file=sys.stderr if result.code else sys.stdout)
    return result.code


if __name__ == "__main__":
    sys.exit(main())
