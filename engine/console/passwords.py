"""Console passwords: scrypt hashes for the config, their check, and a constant-time compare.

Only the standard library. ``python -m engine.console.auth`` prints a hash (see `main`).
"""

from __future__ import annotations

import base64
import functools
import getpass
import hashlib
import hmac
import secrets
import sys
import threading
from typing import TextIO


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**17, 8, 1
"""OWASP's Password Storage Cheat Sheet (2023 onwards): scrypt with N=2^17, r=8, p=1 where
Argon2id is not available (it is not in the standard library). 128 MiB and about a third of a
second a hash on this project's machine. A stored hash carries its own parameters, so a hash
made with other (stronger or older) ones still verifies."""
_MAX_SCRYPT_MEMORY = 2**30
"""The most one verification may use: a hash asking for more (N=2^20, r=8) is refused."""
_VERIFYING = threading.BoundedSemaphore(2)
"""At most two hashes computed at once, so a burst of sign-ins cannot exhaust memory."""


def hash_password(
    password: str, *, n: int = _SCRYPT_N, r: int = _SCRYPT_R, p: int = _SCRYPT_P
) -> str:
    """A salted scrypt hash for the config's ``password_hash``."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8", "surrogatepass"), salt=salt, n=n, r=r, p=p, dklen=32,
        maxmem=_scrypt_memory(n, r, p),
    )  # fmt: skip
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def _scrypt_memory(n: int, r: int, p: int) -> int:
    """What OpenSSL's scrypt needs for these parameters (its own formula), plus a margin."""
    return 128 * r * (n + p + 2) + 2**20


def verify_password(password: str, encoded: str) -> bool:
    """Whether `password` matches `encoded`, with the parameters written in the hash."""
    try:
        _, n_text, r_text, p_text, salt, expected = encoded.split("$")
        n, r, p = int(n_text), int(r_text), int(p_text)
        memory = _scrypt_memory(n, r, p)
        if memory > _MAX_SCRYPT_MEMORY:
            return False
        with _VERIFYING:
            digest = hashlib.scrypt(
                password.encode("utf-8", "surrogatepass"),
                salt=_unb64(salt),
                n=n,
                r=r,
                p=p,
                dklen=len(_unb64(expected)),
                maxmem=memory,
            )
    except (ValueError, TypeError, UnicodeError):
        return False
    return hmac.compare_digest(digest, _unb64(expected))


@functools.cache
def _dummy(n: int, r: int, p: int) -> str:
    return hash_password(secrets.token_hex(16), n=n, r=r, p=p)


def dummy_hash(like: str | None) -> str:
    """A hash of a random password with the parameters of `like` (a configured user's hash):
    checked when the user name is unknown, so a wrong name takes as long as a wrong password.
    Made on first use, then kept."""
    try:
        _, n, r, p, _salt, _digest = (like or "").split("$")
        return _dummy(int(n), int(r), int(p))
    except ValueError:
        return _dummy(_SCRYPT_N, _SCRYPT_R, _SCRYPT_P)


def same_text(offered: str | None, expected: str) -> bool:
    """A constant-time comparison that refuses (never raises on) a non-ASCII offer."""
    if offered is None or not offered.isascii():
        return False
    return hmac.compare_digest(offered.encode("ascii"), expected.encode("ascii"))


def read_password(stdin: TextIO) -> str | None:
    """The password to hash: typed twice at a terminal (not echoed), or else the first line of
    standard input (``printf %s "$PW" | python -m engine.console.auth``). None if the two
    typed copies differ."""
    if stdin.isatty():
        password = getpass.getpass("password: ")
        return password if password == getpass.getpass("again: ") else None
    return stdin.readline().removesuffix("\n").removesuffix("\r")


def main() -> int:
    """``python -m engine.console.auth``: read a password, print its hash for the config."""
    password = read_password(sys.stdin)
    if password is None:
        print("passwords differ", file=sys.stderr)
        return 1
    if len(password) < 12:
        print("use at least 12 characters", file=sys.stderr)
        return 1
    print(hash_password(password))
    return 0
