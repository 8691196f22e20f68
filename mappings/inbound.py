"""One entry point for every inbound payload: detect its format, then map it to a care event."""

from __future__ import annotations

import re

from mappings.errors import MappingError
from mappings.fhir.inbound import map_fhir
from mappings.hl7v2.inbound import map_hl7v2
from mappings.model import CareEvent, MessageFormat
from mappings.profile import FeedProfile

# A byte-order mark, MLLP framing bytes and blank lines before the content (as the readers
# skip them, however many there are).
_LEADING = re.compile(rb"[\xef\xbb\xbf\x0b\x1c \t\r\n]*")


def detect_format(raw: bytes) -> MessageFormat:
    """HL7v2 starts with an MSH (or batch/file header) segment; FHIR JSON with ``{``."""
    start = _LEADING.match(raw)
    skipped = start.end() if start is not None else 0
    head = raw[skipped : skipped + 64]
    if head.startswith((b"MSH", b"FHS", b"BHS")):
        return MessageFormat.HL7V2
    if head.startswith(b"{"):
        return MessageFormat.FHIR
    if not head:
        raise MappingError("empty message", code="100")
    raise MappingError("neither HL7v2 (no MSH segment first) nor FHIR JSON", code="100")


def map_message(raw: bytes, profile: FeedProfile) -> CareEvent:
    """Map any supported inbound payload; raise MappingError with a precise reason otherwise.

    Only MappingError ever leaves this function: a fault inside a mapping or a library on
    strange input (hostile input finds them) is a content error with code 207, so no caller
    (intake, the MLLP and FHIR gateways, the CLI) can be stopped by one message.
    """
    try:
        if type(raw) is not bytes:  # a bytearray or memoryview: the compiled reader takes bytes
            raw = bytes(raw)
        if detect_format(raw) is MessageFormat.HL7V2:
            return map_hl7v2(raw, profile)
        return map_fhir(raw, profile)
    except MappingError:
        raise
    except Exception as exc:
        raise MappingError(f"could not be mapped (internal error {type(exc).__name__})") from exc
