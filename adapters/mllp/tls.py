"""TLS for MLLP: the context a listener serves with (optionally checking client certificates)
and the one a client connects with."""

from __future__ import annotations

import ssl
from pathlib import Path

__all__ = ["client_ssl_context", "server_ssl_context"]


def server_ssl_context(
    cert: str | Path,
    key: str | Path,
    ca: str | Path | None = None,
    require_client_cert: bool = False,
) -> ssl.SSLContext:
    """TLS for a listener: its certificate and key and, to check client certificates, a CA.

    With `require_client_cert` a client without a certificate signed by `ca` cannot connect;
    with only `ca`, a client certificate is checked when one is offered.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    if ca is not None:
        context.load_verify_locations(cafile=ca)
        context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    elif require_client_cert:
        raise ValueError("requiring client certificates needs the CA that signs them")
    return context


def client_ssl_context(
    ca: str | Path | None = None,
    cert: str | Path | None = None,
    key: str | Path | None = None,
    *,
    check_hostname: bool = True,
) -> ssl.SSLContext:
    """TLS for a client: the CA to trust (default: the system's) and an optional client
    certificate."""
    context = ssl.create_default_context(cafile=ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None:
        context.load_cert_chain(cert, key)
    context.check_hostname = check_hostname
    return context
