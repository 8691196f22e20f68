"""Why a message could not be mapped: precise enough to put in an HL7 ERR segment."""

from __future__ import annotations


class MappingError(Exception):
    """The input cannot become a care event.

    `location` names the offending element the way the sender's standard does (``PID-3``,
    ``MSH-9.2``, ``Encounter.status``); `code` is an HL7 table 0357 error code (100 segment
    sequence error, 101 required field missing, 102 data type error, 103 table value not found,
    200 unsupported message type, 201 unsupported event code, 203 unsupported version id,
    207 application internal error).
    """

    def __init__(self, reason: str, *, location: str | None = None, code: str = "207") -> None:
        super().__init__(reason)
        self.reason = reason
        self.location = location
        self.code = code

    def __str__(self) -> str:
        return f"{self.location}: {self.reason}" if self.location else self.reason
