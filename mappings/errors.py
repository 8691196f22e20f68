"""Why a message could not be mapped: precise enough to put in an HL7 ERR segment."""

from __future__ import annotations


class MappingError(Exception):
    """The input cannot become a care event.

    `location` names the offending element the way the sender's standard does (``PID-3``,
    ``MSH-9.2``, ``Encounter.status``); `code` is an HL7 table 0357 error code (100 segment
    sequence error, 101 required field missing, 102 data type error, 103 table value not found,
    200 unsupported message type, 201 unsupported event code, 203 unsupported version id,
    207 application internal error).

    `related` names further elements the reason is about (a MessageHeader event that the
    Encounter's status contradicts names both); `issue` is the FHIR issue type when the 0357
    code says too little (``business-rule``).
    """

    def __init__(
        self,
        reason: str,
        *,
        location: str | None = None,
        code: str = "207",
        related: tuple[str, ...] = (),
        issue: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.location = location
        self.code = code
        self.related = related
        self.issue = issue

    def __str__(self) -> str:
        return f"{self.location}: {self.reason}" if self.location else self.reason
