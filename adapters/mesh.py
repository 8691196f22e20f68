"""One MESH mailbox (NHS England's Message Exchange for Social Care and Health), through NHS
England's own client, `mesh-client`: send, look up a recipient's mailbox, read the inbox,
acknowledge.

`mesh-client` is synchronous (`requests`): every call here runs in a worker thread, so the
event loop never blocks on MESH. Each call uses a client of its own (a `requests` session is
not shared between threads) and makes one attempt: the client's own retries are off, so every
retry is the engine's, durable and recorded. Errors leave as the adapters' own
(`adapters.errors`): a timeout as `DestinationTimeout`, no connection as `DestinationError`,
an HTTP answer that refuses as `DestinationRefused` with its status. Bytes only: what the
messages say is the engine's business.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import requests
from mesh_client import MeshClient, MeshError

from adapters.errors import DestinationError, DestinationRefused, DestinationTimeout

T = TypeVar("T")
_DETAIL = 300
"""Characters of a refusal's text kept in the error."""


@dataclass(frozen=True, slots=True)
class MeshSettings:
    url: str
    """The MESH server, e.g. https://msg.intspineservices.nhs.uk (INT) or a sandbox."""
    mailbox: str
    password: str
    shared_key: str
    cert_file: str | None = None
    """The mailbox's client certificate (MESH authenticates the client by TLS)."""
    key_file: str | None = None
    ca_file: str | None = None
    """The CA that vouches for the server; the system's if None."""
    verify: bool = True
    timeout: float = 60.0
    """Seconds for each HTTP request."""


@dataclass(frozen=True, slots=True)
class InboxMessage:
    """One message read from the inbox, whole, with the MESH headers that came with it."""

    message_id: str
    sender: str | None
    workflow_id: str | None
    local_id: str | None
    subject: str | None
    body: bytes
    truncated: bool = False
    """The body was longer than the reader's limit: only its start is here."""


class MeshMailbox:
    """The engine's own MESH mailbox."""

    def __init__(self, settings: MeshSettings, *, max_body_bytes: int = 10 * 1024 * 1024) -> None:
        self._settings = settings
        self._max_body = max_body_bytes

    @property
    def mailbox_id(self) -> str:
        return self._settings.mailbox

    def _client(self) -> MeshClient:
        s = self._settings
        cert: tuple[str, str] | tuple[str] | None = None
        if s.cert_file and s.key_file:
            cert = (s.cert_file, s.key_file)
        elif s.cert_file:
            cert = (s.cert_file,)
        verify: str | bool = s.ca_file if (s.verify and s.ca_file) else s.verify
        return MeshClient(
            s.url, s.mailbox, s.password, shared_key=s.shared_key.encode(), cert=cert,
            verify=verify, check_hostname=s.verify, max_retries=0, timeout=s.timeout,
            application_name="carebridge",
        )  # fmt: skip

    async def _run(self, call: Callable[[MeshClient], T]) -> T:
        def in_thread() -> T:
            with self._client() as client:
                return _translated(lambda: call(client))

        return await asyncio.to_thread(in_thread)

    async def send(
        self, recipient: str, body: bytes, *, workflow_id: str, local_id: str, subject: str,
        content_type: str,
    ) -> str:  # fmt: skip
        """Upload one message to `recipient`'s mailbox; MESH's message id."""

        def call(client: MeshClient) -> str:
            # One chunk, sent with the client's own chunk call so that a refusal keeps its
            # HTTP status (403: the mailbox's credentials; 417: MESH's own error codes).
            response = client.send_chunk(
                recipient, body, chunk_num=1, total_chunks=1, workflow_id=workflow_id,
                local_id=local_id, subject=subject, content_type=content_type,
            )  # fmt: skip
            try:
                answer = response.json()
            except ValueError:
                answer = {}
            taken = response.status_code in (200, 202) and isinstance(answer, dict)
            if taken and (message_id := answer.get("message_id") or answer.get("messageID")):
                return str(message_id)
            raise DestinationRefused(response.status_code, _mesh_error(answer, response.text))

        return await self._run(call)

    async def lookup(self, ods_code: str, workflow_id: str) -> list[str]:
        """The mailboxes MESH's endpoint lookup names for an organisation and a workflow."""

        def call(client: MeshClient) -> list[str]:
            answer = client.lookup_endpoint(ods_code, workflow_id)
            return [str(r["mailbox_id"]) for r in answer.get("results", []) if r.get("mailbox_id")]

        return await self._run(call)

    async def inbox(self, limit: int = 500) -> list[str]:
        """The ids of the messages waiting in the inbox (at most `limit`, oldest first)."""
        return await self._run(lambda client: client.list_messages(max_results=max(10, limit)))

    async def retrieve(self, message_id: str) -> InboxMessage:
        """One inbox message, whole (every chunk), up to the reader's limit."""
        limit = self._max_body

        def call(client: MeshClient) -> InboxMessage:
            message = client.retrieve_message(message_id)
            try:
                body = message.read(limit + 1)
            finally:
                message.close()  # type: ignore[no-untyped-call]
            return InboxMessage(
                message_id=message_id, sender=message.sender, workflow_id=message.workflow_id,
                local_id=message.local_id, subject=message.subject, body=body[:limit],
                truncated=len(body) > limit,
            )  # fmt: skip

        return await self._run(call)

    async def acknowledge(self, message_id: str) -> None:
        """Acknowledge an inbox message: MESH removes it from the inbox."""
        await self._run(lambda client: client.acknowledge_message(message_id))


def _mesh_error(answer: object, text: str) -> str:
    """MESH's own words for a refusal: its error code and message when it gave them."""
    if isinstance(answer, dict):
        details = answer.get("detail")
        if isinstance(details, list) and details and isinstance(details[0], dict):
            first = details[0]
            code = f"MESH error {first.get('code')}: " if first.get("code") else ""
            return f"{code}{first.get('msg', '')}"[:_DETAIL]
        if description := answer.get("errorDescription"):
            return f"MESH error {answer.get('errorCode', '')}: {description}"[:_DETAIL]
    return text[:_DETAIL]


def _translated(call: Callable[[], T]) -> T:
    """`call`, with `requests`' and `mesh-client`'s errors as the adapters' own."""
    try:
        return call()
    except requests.Timeout as exc:
        raise DestinationTimeout("MESH did not answer in time") from exc
    except requests.HTTPError as exc:
        response = exc.response
        status = response.status_code if response is not None else None
        text = response.text[:_DETAIL] if response is not None else ""
        raise DestinationRefused(status, text) from exc
    except MeshError as exc:  # the upload was refused: (description, MESH's error response)
        detail = exc.args[0] if exc.args else "refused"
        raise DestinationRefused(None, str(detail)[:_DETAIL]) from exc
    except (requests.RequestException, OSError) as exc:
        raise DestinationError(f"MESH not reached: {type(exc).__name__}") from exc
