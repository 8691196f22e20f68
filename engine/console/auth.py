"""Who is asking, and may they: bearer tokens, server-side sessions, CSRF tokens, roles.

- A session cookie is a random id (256 bits). The store keeps its SHA-256 with the user, the
  address it signed in from and its times (`engine.store.console_sessions`): a session ends at
  its absolute lifetime, after the idle timeout, on sign-out, or when an admin revokes it. The
  user's role is looked up in the config on every request, so a user removed from the config
  loses access at once.
- A CSRF token is the HMAC of the session id: forms carry it, every POST checks it. Requests
  with a bearer token carry no cookie, so they cannot be forged cross-site and need none.
- Sign-in itself is protected by a pre-session nonce cookie and its HMAC in the form.
- Passwords: `engine.console.passwords` (``python -m engine.console.auth`` prints a hash).

Every value offered by a client (cookie, token, form field) is checked for shape before use:
a non-ASCII or malformed one is simply not valid, never an error.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from engine.console.config import ROLES, ConsoleConfig, Role
from engine.console.passwords import dummy_hash, hash_password, main, same_text, verify_password
from engine.store import Store
from engine.store import console_sessions as sessions

__all__ = ["Authenticator", "Principal", "allowed", "hash_password", "sees_patient_data",
           "verify_password"]  # fmt: skip

_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{43}")
_TOUCH_EVERY = timedelta(minutes=1)


def allowed(role: Role, needed: Role) -> bool:
    """Roles are ordered: viewer < clinical < operator < admin."""
    return ROLES.index(role) >= ROLES.index(needed)


def sees_patient_data(role: Role) -> bool:
    return allowed(role, "clinical")


def session_key(session_id: str) -> str:
    """What the store keeps of a session id: its SHA-256."""
    return hashlib.sha256(session_id.encode("ascii")).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: Role
    via: Literal["session", "token"]
    session_id: str | None = None
    """For a session: the id its CSRF token is derived from."""
    session_row: int | None = None
    """For a session: its row in the store (sign-out ends it)."""


class Authenticator:
    def __init__(self, config: ConsoleConfig, store: Store) -> None:
        self._config = config
        self._store = store
        self._secret = config.session_secret.get_secret_value().encode()
        self._users = {u.name: u for u in config.users}
        self._any_hash = config.users[0].password_hash if config.users else None

    # ---- sign-in -----------------------------------------------------------------------

    async def check_password(self, name: str, password: str) -> Principal | None:
        """Check a password (off the event loop: scrypt takes a third of a second)."""
        user = self._users.get(name)
        encoded = user.password_hash if user else dummy_hash(self._any_hash)
        ok = await asyncio.to_thread(verify_password, password, encoded)
        if user is None or not ok:
            return None
        return Principal(user.name, user.role, "session")

    async def open_session(self, principal: Principal, address: str | None,
                           now: datetime) -> str:  # fmt: skip
        """Start a session for a signed-in user; return its id (the cookie's value)."""
        session_id = secrets.token_urlsafe(32)
        expires = now + self._config.session_lifetime
        await sessions.open_session(
            self._store, session_key(session_id), principal.name, address, now, expires
        )
        return session_id

    def from_token(self, authorization: str | None) -> Principal | None:
        if not authorization or not authorization.startswith("Bearer "):
            return None
        offered = authorization.removeprefix("Bearer ").strip()
        found: Principal | None = None
        for token in self._config.tokens:  # every token compared: no early exit to time
            if same_text(offered, token.token.get_secret_value()):
                found = Principal(token.name, token.role, "token")
        return found

    # ---- sessions ----------------------------------------------------------------------

    async def from_session(self, cookie: str | None, now: datetime) -> Principal | None:
        """The session's user, if the cookie names a live session of a configured user."""
        if not cookie or not _SESSION_ID.fullmatch(cookie):
            return None
        row = await sessions.find_session(self._store, session_key(cookie))
        if row is None or row.revoked_at is not None or row.expires_at <= now:
            return None
        if now - row.last_seen_at >= self._config.session_idle_timeout:
            return None
        user = self._users.get(row.user_name)
        if user is None:
            return None
        if now - row.last_seen_at >= _TOUCH_EVERY:
            await sessions.touch_session(self._store, row.id, now)
        return Principal(user.name, user.role, "session", cookie, row.id)

    async def sign_out(self, principal: Principal, now: datetime) -> None:
        if principal.session_row is not None:
            await sessions.end_session(self._store, principal.session_row, now, principal.name)

    # ---- CSRF --------------------------------------------------------------------------

    def _mac(self, purpose: str, data: str) -> str:
        digest = hmac.new(self._secret, f"{purpose}:{data}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def csrf_token(self, principal: Principal) -> str:
        return self._mac("csrf", principal.session_id or "")

    def csrf_ok(self, principal: Principal, offered: str | None) -> bool:
        if principal.via == "token":
            return True
        return same_text(offered, self.csrf_token(principal))

    def login_token(self, nonce: str) -> str:
        return self._mac("login", nonce)

    def login_ok(self, nonce: str | None, offered: str | None) -> bool:
        if not nonce or not nonce.isascii():
            return False
        return same_text(offered, self.login_token(nonce))


if __name__ == "__main__":
    sys.exit(main())
