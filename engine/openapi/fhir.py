"""The OpenAPI document of the FHIR intake listener (`fhir_http`): adapters/fhir_http.py reads
the request within limits, engine/fhir_gateway.py decides the answer. Every answer of this
listener, errors of the listener itself included (unknown path, wrong method), is a FHIR
OperationOutcome in application/fhir+json."""

from __future__ import annotations

from engine.openapi.common import (
    DOCUMENT_PATH,
    OPENAPI_VERSION,
    RETRY_AFTER,
    JsonObject,
    document_operation,
    info,
    json_answer,
    with_security_headers,
)

FHIR_JSON = "application/fhir+json"

OPERATION_OUTCOME: JsonObject = {
    "type": "object",
    "required": ["resourceType", "issue"],
    "properties": {
        "resourceType": {"const": "OperationOutcome"},
        "issue": {"type": "array", "minItems": 1, "items": {
            "type": "object",
            "required": ["severity", "code"],
            "properties": {
                "severity": {"enum": ["fatal", "error", "warning", "information"]},
                "code": {"type": "string", "description": "FHIR IssueType code"},
                "diagnostics": {"type": "string"},
                "expression": {"type": "array", "items": {"type": "string"},
                               "description": "FHIRPath of the elements at fault"},
            },
        }},
    },
}  # fmt: skip

FHIR_RESOURCE: JsonObject = {
    "description": "A FHIR R4 resource in JSON: a messaging Bundle (MessageHeader first), a "
    "transaction or batch Bundle, or a single Encounter. The engine checks it in full (FHIR R4 "
    "structure, UK Core rules, mapping) and says what is wrong in the OperationOutcome; the "
    "schema here is only the outline every FHIR resource has.",
    "type": "object",
    "required": ["resourceType"],
    "properties": {"resourceType": {"type": "string"}},
}


def _outcome(description: str, headers: dict[str, JsonObject] | None = None) -> JsonObject:
    return json_answer(description, {"$ref": "#/components/schemas/OperationOutcome"},
                       FHIR_JSON, headers)  # fmt: skip


_INTAKE_ANSWERS: dict[str, JsonObject] = {
    "202": _outcome("accepted: published and confirmed by the broker; the outcome names the "
                    "care event"),
    "400": _outcome("not readable FHIR JSON, an Authorization header that is not a well-formed "
                    "bearer token, or a body cut short"),
    "401": _outcome("the source does not admit this sender (bearer token or client "
                    "certificate)", {"WWW-Authenticate": {"required": True,
                                                          "schema": {"const": "Bearer"}}}),
    "404": _outcome("no FHIR source of that name"),
    "408": _outcome("the body did not arrive within the listener's body_timeout"),
    "413": _outcome("the body is over max_body_bytes (or over intake.max_message_bytes: then "
                    "still kept in the message log as rejected)"),
    "415": _outcome("the Content-Type is not application/fhir+json or application/json"),
    "417": _outcome("an Expect header other than 100-continue"),
    "422": _outcome("readable FHIR that is invalid or cannot be mapped; the expressions name "
                    "the elements (kept in the message log as rejected)"),
    "503": _outcome("the engine cannot accept messages now (broker or store); send again",
                    {"Retry-After": RETRY_AFTER}),
}  # fmt: skip


def _intake() -> JsonObject:
    body = {"schema": {"$ref": "#/components/schemas/FhirResource"}}
    return {"post": {
        "operationId": "fhirIntake",
        "summary": "send a FHIR message for a source",
        "description": "The sender is checked from the request head before a byte of the body "
        "is read; with Expect: 100-continue the client is asked for the body only once the "
        "head has passed. The answer comes after the broker's confirm.",
        "parameters": [
            {"name": "source", "in": "path", "required": True,
             "schema": {"type": "string", "minLength": 1}},
            {"name": "Expect", "in": "header", "required": False,
             "schema": {"const": "100-continue"}},
        ],
        "security": [{"bearer": []}, {"clientCertificate": []}],
        "requestBody": {"required": True, "content": {FHIR_JSON: body, "application/json": body}},
        "responses": _INTAKE_ANSWERS,
    }}  # fmt: skip


def fhir_document() -> JsonObject:
    """The document served at GET /openapi.json on the FHIR listener."""
    return with_security_headers({
        "openapi": OPENAPI_VERSION,
        "info": info("Carebridge FHIR intake", "FHIR R4 messages in, one source per path: "
                     "answered only after the broker has confirmed the message."),
        "paths": {"/fhir/{source}": _intake(), DOCUMENT_PATH: document_operation()},
        "components": {
            "schemas": {"OperationOutcome": OPERATION_OUTCOME, "FhirResource": FHIR_RESOURCE},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "one of the source's fhir.tokens"},
                "clientCertificate": {"type": "mutualTLS", "description": "a client "
                                      "certificate whose CN is in the source's client_names"},
            },
        },
    })  # fmt: skip
