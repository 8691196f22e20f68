"""FHIR OperationOutcome: how a FHIR sender hears why its message was refused. Pure."""

from __future__ import annotations

from typing import Any, Literal

from mappings.errors import MappingError

Severity = Literal["fatal", "error", "warning", "information"]

# HL7 table 0357 (the code every MappingError carries) to the FHIR issue-type code.
_ISSUE_TYPE = {
    "100": "structure",
    "101": "required",
    "102": "value",
    "103": "code-invalid",
    "104": "too-long",
    "200": "not-supported",
    "201": "not-supported",
    "203": "not-supported",
    "205": "duplicate",
}


def outcome(severity: Severity, code: str, diagnostics: str,
            *expressions: str | None) -> dict[str, Any]:  # fmt: skip
    issue: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": diagnostics}
    named = [e for e in expressions if e]
    if named:
        issue["expression"] = named
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def for_mapping_error(error: MappingError) -> dict[str, Any]:
    """The OperationOutcome for content that cannot be mapped, naming every element path."""
    code = error.issue or _ISSUE_TYPE.get(error.code, "invalid")
    return outcome("error", code, error.reason, error.location, *error.related)


def http_status(error: MappingError) -> int:
    """400 when the payload is not a readable FHIR structure; 422 when it is, but invalid."""
    return 400 if error.code == "100" or (error.location or "").startswith("line ") else 422
