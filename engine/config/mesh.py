"""A ``mesh`` destination: discharges to GP practices as ITK3 Transfer of Care messages over
MESH (docs/mesh.md), with the engine's own mailbox and its acknowledgements."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field

from engine.config.base import Duration, FromEnvironment, HttpUrl, Name, TlsConfig
from engine.config.http import HttpDestination, Url

MailboxId = Annotated[str, Field(pattern=r"^[A-Za-z0-9]{1,20}$")]
OdsCode = Annotated[
    str, BeforeValidator(lambda v: v.upper() if isinstance(v, str) else v),
    Field(pattern=r"^[A-Z0-9]{3,10}$"),
]  # fmt: skip
"""An ODS code, upper-cased as read (the lookup upper-cases the patient's practice: a
lower-case key would otherwise never match)."""


class MeshDestination(HttpDestination):
    """Sends each mental health or acute discharge (and the withdrawal of one) to the patient's
    GP practice's MESH mailbox as an ITK3 message, and reads the ITK3 acknowledgements that
    come back to the trust's own mailbox."""

    type: Literal["mesh"]
    name: Name
    url: HttpUrl
    """The MESH server (NHS England's INT or live endpoint, or a sandbox)."""
    mailbox: MailboxId
    """The trust's own MESH mailbox: the sender, and where acknowledgements arrive."""
    password: Annotated[str, FromEnvironment("MESH_PASSWORD", min_length=1)]
    """The mailbox's password; only as ${ENV_NAME}. Issued by NHS England with the mailbox, so
    its length is not ours to choose (the 32-character rule does not apply)."""
    shared_key: Annotated[str, FromEnvironment("MESH_SHARED_KEY", min_length=1)]
    """The MESH environment's shared key (signs every request); only as ${ENV_NAME}. Issued by
    NHS England for the environment (the 32-character rule does not apply)."""
    tls: TlsConfig | None = None
    """The mailbox's client certificate and key, and the CA of the MESH server."""
    sender_ods: Annotated[str, Field(pattern=r"^[A-Za-z0-9]{3,10}$")]
    """The discharging organisation's ODS code (the trust)."""
    recipient_type: Literal["FA", "FI"] = "FA"
    """ITK3 RecipientType: For Action (default: the GP acts on the follow-up) or Information."""
    mailboxes: dict[OdsCode, MailboxId] = Field(default_factory=dict)
    """GP practice ODS code -> MESH mailbox: overrides MESH endpoint lookup for that practice."""
    lookup: bool = True
    """Ask MESH's endpoint lookup for a practice not in `mailboxes`."""
    lookup_cache: Duration = timedelta(hours=1)
    """How long a mailbox found by lookup is used before MESH is asked again (a practice with
    none is asked again at each attempt)."""
    inbox_poll_interval: Duration = timedelta(seconds=60)
    """How often the trust's inbox is read for acknowledgements."""
    business_ack_within: Duration | None = timedelta(hours=24)
    """No ITK3 business acknowledgement this long after the upload: an operator alert."""
    timeout: Duration = timedelta(seconds=60)
    retry: Name = "default"
    hold_on_dead_letter: bool = True

    def urls(self) -> Iterator[Url]:
        yield ("url",), self.url
