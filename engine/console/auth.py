"""Who is asking, and may they: password hashes, signed session cookies, CSRF tokens, roles.

Only the standard library: scrypt for passwords, HMAC-SHA256 for cookies and CSRF tokens.

- A session cookie is ``<payload b64>.<hmac b64>``; the payload names the user, a random
  session id and an expiry. The user's role is looked up in the config on every request, so a
  user removed from the config loses access at once.
- A CSRF token is the HMAC of the session id: forms carry it, every POST checks it. Requests
  with a bearer token carry no cookie, so they cannot be forged cross-site and need none.
- Sign-in itself is protected by a pre-session nonce cookie and its HMAC in the form.
"""

from __future__ import annotations

import asyncio
import base64
import getpass
import hashlib
import hmac
import json
import secrets
import sys
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from engine.console.config import ROLES, ConsoleConfig, Role

_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(
    password: str, *, n: int = _SCRYPT_N, r: int = _SCRYPT_R, p: int = _SCRYPT_P
) -> str:
    """A salted scrypt hash for the config's ``password_hash``."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    try:
        _, n, r, p, salt, expected = encoded.split("$")
        digest = hashlib.scrypt(
            password.encode(),
            salt=_unb64(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(_unb64(expected)),
            maxmem=2**27,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, _unb64(expected))


_DUMMY_HASH = hash_password(secrets.token_hex(16), n=_SCRYPT_N)
"""Checked when the user name is unknown, so a wrong name takes as long as a wrong password."""


def allowed(role: Role, needed: Role) -> bool:
    """Roles are ordered: viewer < clinical < operator < admin."""
    return ROLES.index(role) >= ROLES.index(needed)


def sees_patient_data(role: Role) -> bool:
    return allowed(role, "clinical")


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: Role
    via: Literal["session", "token"]
    session_id: str | None = None
    """For a session: the id its CSRF token is derived from."""


class Authenticator:
    def __init__(self, config: ConsoleConfig) -> None:
        self._config = config
        self._secret = config.session_secret.get_secret_value().encode()
        self._users = {u.name: u for u in config.users}

    # ---- sign-in -----------------------------------------------------------------------

    async def sign_in(self, name: str, password: str) -> Principal | None:
        """Check a password (off the event loop: scrypt takes tens of milliseconds)."""
        user = self._users.get(name)
        encoded = user.password_hash if user else _DUMMY_HASH
        ok = await asyncio.to_thread(verify_password, password, encoded)
        if user is None or not ok:
            return None
        return Principal(user.name, user.role, "session", secrets.token_urlsafe(18))

    def from_token(self, authorization: str | None) -> Principal | None:
        if not authorization or not authorization.startswith("Bearer "):
            return None
        offered = authorization.removeprefix("Bearer ").strip().encode()
        found: Principal | None = None
        for token in self._config.tokens:  # every token compared: no early exit to time
            if hmac.compare_digest(offered, token.token.get_secret_value().encode()):
                found = Principal(token.name, token.role, "token")
        return found

    # ---- sessions ----------------------------------------------------------------------

    def _mac(self, purpose: str, data: str) -> str:
        return _b64(hmac.new(self._secret, f"{purpose}:{data}".encode(), hashlib.sha256).digest())

    def session_cookie(self, principal: Principal, now: datetime) -> str:
        expires = int((now + self._config.session_lifetime).timestamp())
        payload = _b64(
            json.dumps({"u": principal.name, "s": principal.session_id, "e": expires}).encode()
        )
        return f"{payload}.{self._mac('session', payload)}"

    def from_session(self, cookie: str | None, now: datetime) -> Principal | None:
        if not cookie or "." not in cookie:
            return None
        payload, mac = cookie.rsplit(".", 1)
        if not hmac.compare_digest(mac, self._mac("session", payload)):
            return None
        try:
            data = json.loads(_unb64(payload))
            name, session_id, expires = str(data["u"]), str(data["s"]), int(data["e"])
        except (ValueError, KeyError, TypeError):
            return None
        user = self._users.get(name)
        if user is None or expires < now.timestamp():
            return None
        return Principal(user.name, user.role, "session", session_id)

    # ---- CSRF --------------------------------------------------------------------------

    def csrf_token(self, principal: Principal) -> str:
        return self._mac("csrf", principal.session_id or "")

    def csrf_ok(self, principal: Principal, offered: str | None) -> bool:
        if principal.via == "token":
            return True
        return offered is not None and hmac.compare_digest(offered, self.csrf_token(principal))

    def login_token(self, nonce: str) -> str:
        return self._mac("login", nonce)

    def login_ok(self, nonce: str | None, offered: str | None) -> bool:
        return bool(nonce and offered) and hmac.compare_digest(
            str(offered), self.login_token(str(nonce))
        )


def main() -> int:
    """``python -m engine.console.auth``: read a password twice, print its hash for the config."""
    password = getpass.getpass("password: ")
    if password != getpass.getpass("again: "):
        print("passwords differ", file=sys.stderr)
        return 1
    if len(password) < 12:
        print("use at least 12 characters", file=sys.stderr)
        return 1
    print(hash_password(password))
    return 0


if __name__ == "__main__":
    sys.exit(main())
