"""Console password hashes: OWASP's scrypt cost by default, a stronger stored hash still
verifies (its own parameters are used), and the hash helper works without a terminal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pydantic import SecretStr

from engine.console.config import ConsoleConfig, ConsoleTls
from engine.console.passwords import hash_password, same_text, verify_password

ROOT = Path(__file__).resolve().parents[2]


def test_the_default_cost_is_owasps_scrypt_minimum() -> None:
    encoded = hash_password("correct horse battery staple")
    assert encoded.startswith("scrypt$131072$8$1$")  # N=2^17, r=8, p=1
    assert verify_password("correct horse battery staple", encoded)
    assert not verify_password("correct horse battery stapler", encoded)


def test_a_stronger_or_weaker_stored_hash_verifies_with_its_own_parameters() -> None:
    for n, r in ((2**17, 16), (2**10, 8)):
        encoded = hash_password("pässwörd with ümlauts", n=n, r=r)
        assert verify_password("pässwörd with ümlauts", encoded), (n, r)
    absurd = hash_password("x", n=2**4).replace("scrypt$16$", "scrypt$4194304$", 1)
    assert not verify_password("x", absurd)  # 4 GiB asked for: refused, not attempted


def test_odd_passwords_and_hashes_are_refused_not_raised() -> None:
    good = hash_password("a long enough password", n=2**10)
    assert not verify_password("\udcff lone surrogate", good)  # refused, never raised
    for broken in ("", "scrypt$x$8$1$a$b", "scrypt$1024$8$1$!!$??", "bcrypt$10$..."):
        assert not verify_password("a long enough password", broken)
    assert not same_text("tökén", "token")
    assert not same_text(None, "token")
    assert same_text("token", "token")


def run_helper(stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine.console.auth"],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def test_the_hash_helper_reads_standard_input_without_a_terminal() -> None:
    done = run_helper("a password for the console\n")
    assert done.returncode == 0, done.stderr
    encoded = done.stdout.strip()
    assert encoded.startswith("scrypt$131072$8$1$")
    assert verify_password("a password for the console", encoded)
    short = run_helper("short\n")
    assert (short.returncode, short.stdout) == (1, "")
    assert "12 characters" in short.stderr


def test_cookies_are_secure_with_tls_or_behind_a_tls_proxy(tmp_path: Path) -> None:
    secret = SecretStr("s" * 40)
    tls = ConsoleTls(cert_file=tmp_path / "c.pem", key_file=tmp_path / "k.pem")
    assert ConsoleConfig(session_secret=secret, tls=tls).secure_cookies
    assert ConsoleConfig(session_secret=secret, behind_tls_proxy=True).secure_cookies
    assert not ConsoleConfig(session_secret=secret).secure_cookies
