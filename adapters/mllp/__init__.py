"""MLLP over asyncio: framing, a listener, and a client for MLLP destinations.

    MllpDecoder     bytes in, complete frames out: no sockets, tested by feeding it bytes
    MllpListener    accepts connections; hands each message to `handle`, writes its answer
    MllpClient      one persistent connection to a destination: frame, send, wait for the ACK
    send_and_wait   one message on a connection of its own

Framing, and how leniently it is read, is described in `adapters.mllp.framing`.

The package moves bytes and never reads HL7: what a message means and what to answer is
decided by the callables the composition root hands the listener. Logs carry peers, sizes and
counts, never message bytes.

One module each: `framing`, `listener`, `client` and `tls`; the package exports their names.
"""

from __future__ import annotations

from adapters.mllp.client import MllpClient, send_and_wait
from adapters.mllp.framing import CARRIAGE_RETURN, END_BLOCK, START_BLOCK, Frame, MllpDecoder, frame
from adapters.mllp.listener import Handle, MllpListener, PeerInfo, RejectOversized
from adapters.mllp.tls import client_ssl_context, server_ssl_context

__all__ = [
    "CARRIAGE_RETURN",
    "END_BLOCK",
    "START_BLOCK",
    "Frame",
    "Handle",
    "MllpClient",
    "MllpDecoder",
    "MllpListener",
    "PeerInfo",
    "RejectOversized",
    "client_ssl_context",
    "frame",
    "send_and_wait",
    "server_ssl_context",
]
