"""``console:``: the operator console's settings, validated at start.

Secrets come from the environment through the main config's ``${NAME}`` references: the
session secret and every token. Users carry only password hashes
(``python -m engine.console.auth`` prints one).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from engine.config.base import Duration, FromEnvironment, Strict
from engine.config.listeners import ListenerLimits

Role = Literal["viewer", "clinical", "operator", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "clinical", "operator", "admin")
"""In order of power: each role can do everything the roles before it can."""


class ConsoleTls(Strict):
    """Serve the console over HTTPS; with `ca_file`, ask for client certificates too."""

    cert_file: Path
    key_file: Path
    ca_file: Path | None = None
    require_client_cert: bool = False


class ConsoleUser(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9._@-]{1,80}$")
    role: Role
    password_hash: str
    """``scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>``, never the password itself."""

    @field_validator("password_hash")
    @classmethod
    def _is_a_hash(cls, value: str) -> str:
        parts = value.split("$")
        if len(parts) != 6 or parts[0] != "scrypt" or not all(p.isdigit() for p in parts[1:4]):
            raise ValueError("must be a scrypt hash as printed by python -m engine.console.auth")
        return value


class ConsoleToken(Strict):
    """A bearer token for scripts and Prometheus (``Authorization: Bearer ...``)."""

    name: str = Field(pattern=r"^[A-Za-z0-9._@-]{1,80}$")
    role: Role
    token: Annotated[SecretStr, FromEnvironment()]


class SignInThrottle(Strict):
    """Failed sign-ins in a row (ASVS 2.2.1): after `user_failures` for one user name, or
    `address_failures` from one address, each further failure locks that name or address out
    for `lockout`, doubling with every failure up to `max_lockout`. A locked-out attempt is
    refused without its password being checked. Failures are forgotten after `forget_after`
    without one, and a user's on a successful sign-in."""

    user_failures: int = Field(default=5, ge=1, le=1000)
    address_failures: int = Field(default=20, ge=1, le=100_000)
    lockout: Duration = timedelta(minutes=1)
    max_lockout: Duration = timedelta(hours=1)
    forget_after: Duration = timedelta(hours=24)

    def lock(self, threshold: int, failures: int) -> timedelta | None:
        """How long `failures` in a row lock a key whose threshold is `threshold`."""
        if failures < threshold:
            return None
        doublings = min(failures - threshold, 30)
        lock: timedelta = min(self.lockout * 2**doublings, self.max_lockout)
        return lock


class ConsoleConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8081, ge=0, le=65535)
    session_secret: Annotated[SecretStr, FromEnvironment("CONSOLE_SESSION_SECRET")]
    """Signs session cookies and CSRF tokens; from the environment, at least 32 characters."""
    session_lifetime: Duration = timedelta(hours=8)
    """The absolute end of a session, however busy (ASVS 3.3.1)."""
    session_idle_timeout: Duration = timedelta(minutes=30)
    """A session unused this long ends (ASVS 3.3.1); its use is noted at most once a minute."""
    behind_tls_proxy: bool = False
    """The console is reached over HTTPS through a proxy that ends TLS (with `tls` unset): the
    cookies are marked ``Secure`` and named with the ``__Host-`` prefix, and answers carry
    ``Strict-Transport-Security``, as with `tls`."""
    trusted_proxies: tuple[str, ...] = ()
    """Addresses of proxies in front of the console: for a request from one of them the client's
    address is the last ``X-Forwarded-For`` entry not itself a trusted proxy (sign-in throttling
    and the logs use it). Empty: the peer's own address."""
    sign_in: SignInThrottle = SignInThrottle()
    users: tuple[ConsoleUser, ...] = ()
    tokens: tuple[ConsoleToken, ...] = ()
    tls: ConsoleTls | None = None
    limits: ListenerLimits = ListenerLimits()
    page_size: int = Field(default=50, ge=1, le=500)
    bulk_limit: int = Field(default=1000, ge=1, le=100_000)
    """Most dead letters one bulk replay may reset."""
    due_soon: Duration = Field(default=timedelta(hours=24), gt=timedelta(0), le=timedelta(days=14))
    """The follow-ups page's default "due soon" window (a page may ask for another)."""

    @property
    def secure_cookies(self) -> bool:
        """Whether browsers reach the console over HTTPS (its own TLS or a proxy's)."""
        return self.tls is not None or self.behind_tls_proxy

    @model_validator(mode="after")
    def _unique_names(self) -> ConsoleConfig:
        names = [u.name for u in self.users] + [t.name for t in self.tokens]
        if len(names) != len(set(names)):
            raise ValueError("user and token names must be unique")
        return self
