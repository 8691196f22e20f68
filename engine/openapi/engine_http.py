"""The OpenAPI document of the engine's `http` listener: health (engine/health.py), the
follow-up list (engine/notifications/follow_ups.py) and the pages behind notification links
(engine/notifications/pages.py). Errors are text/plain sentences, except the link action's
refusals, which are a page (a browser's form) or a JSON object (a JSON client)."""

from __future__ import annotations

from engine.openapi.common import (
    DOCUMENT_PATH,
    OPENAPI_VERSION,
    JsonObject,
    document_operation,
    info,
    json_answer,
    plain_text,
    with_security_headers,
)

_HTML = {"text/html": {"schema": {"type": "string"}}}
_LINK = "/notifications/{destination}/{event_id}"
_TOO_SLOW = plain_text("the body did not arrive within the listener's body_timeout")
_TOO_LARGE = plain_text("the body is over 64 KiB")

_READINESS: JsonObject = {
    "type": "object",
    "required": ["status", "checks"],
    "properties": {
        "status": {"enum": ["ready", "not ready"]},
        "checks": {"type": "object", "additionalProperties": {"type": "boolean"},
                   "description": "each check by name (broker_connected, consumers_attached, "
                   "store_reachable, store_has_room, tasks_running)"},
    },
}  # fmt: skip
_FOLLOW_UP: JsonObject = {
    "type": "object",
    "required": ["event_id", "standard", "due_at", "status"],
    "properties": {"event_id": {"type": "string"}, "standard": {"type": "string"},
                   "due_at": {"type": "string", "format": "date-time"},
                   "status": {"type": "string"}},
}  # fmt: skip
_LINK_RESULT: JsonObject = {
    "type": "object",
    "required": ["event_id", "action", "recorded", "outcome"],
    "properties": {
        "event_id": {"type": "string"}, "action": {"enum": ["ack", "done"]},
        "recorded": {"type": "boolean"},
        "outcome": {"enum": ["recorded", "nothing_open", "used", "expired", "unknown"]},
    },
}  # fmt: skip
_LINK_ERROR: JsonObject = {"type": "object", "required": ["error"],
                           "properties": {"error": {"type": "string"}}}  # fmt: skip


def _health() -> dict[str, JsonObject]:
    alive = {"type": "object", "required": ["status"], "properties": {"status": {"const": "alive"}}}
    readiness = {"$ref": "#/components/schemas/Readiness"}
    return {
        "/healthz": {"get": {"operationId": "healthz", "summary": "the process is alive",
                             "security": [], "responses": {"200": json_answer("alive", alive)}}},
        "/readyz": {"get": {
            "operationId": "readyz", "summary": "the engine can work", "security": [],
            "responses": {"200": json_answer("every check passed", readiness),
                          "503": json_answer("a check failed", readiness)},
        }},
    }  # fmt: skip


def _follow_ups() -> JsonObject:
    listed = {"type": "array", "items": {"$ref": "#/components/schemas/FollowUp"}}
    return {"get": {
        "operationId": "followUps",
        "summary": "follow-ups after discharge by state, for operators (identifiers only)",
        "security": [{"listToken": []}],
        "parameters": [{"name": "state", "in": "query", "required": False, "schema": {
            "enum": ["overdue", "unacknowledged", "open"], "default": "overdue"}}],
        "responses": {
            "200": json_answer("the follow-ups in that state", listed),
            "400": plain_text("state is not overdue, unacknowledged or open"),
            "401": plain_text("no bearer token, a wrong one, or follow_up.list_token unset"),
        },
    }}  # fmt: skip


def _link_parameters(*, action: bool) -> list[JsonObject]:
    names = [
        ("destination", "a notification destination"),
        ("event_id", "the notification's care event (at most 40 characters)"),
    ]
    found = [{"name": n, "in": "path", "required": True, "description": d,
              "schema": {"type": "string", "minLength": 1}} for n, d in names]  # fmt: skip
    if action:
        found.append({"name": "action", "in": "path", "required": True,
                      "schema": {"enum": ["ack", "done"]}})  # fmt: skip
    return found


def _link_action() -> JsonObject:
    form = {"type": "object", "properties": {
        "token": {"type": "string", "description": "the code after # in the link"},
        "by": {"type": "string", "description": "who; required for done"}}}  # fmt: skip
    either: dict[str, JsonObject] = {"text/html": {"schema": {"type": "string"}}}

    def answer(description: str, schema: JsonObject) -> JsonObject:
        return {"description": description,
                "content": {**either, "application/json": {"schema": schema}}}  # fmt: skip

    bad = answer("token missing or malformed, or done without by (a page, or JSON for a JSON "
                 "client)", {"$ref": "#/components/schemas/LinkError"})  # fmt: skip
    bad["content"]["text/plain"] = {"schema": {"type": "string"}}
    bad["description"] += "; text/plain when the body is not form data or a JSON object"
    result = {"$ref": "#/components/schemas/LinkResult"}
    return {
        "operationId": "useLink",
        "summary": "acknowledge receipt (ack) or record the follow-up done (done)",
        "description": "A page for a browser's form, JSON when the request is JSON.",
        "security": [],
        "parameters": _link_parameters(action=True),
        "requestBody": {"required": False, "content": {
            "application/x-www-form-urlencoded": {"schema": form},
            "application/json": {"schema": form}}},
        "responses": {
            "200": answer("recorded, or the link was good but nothing was open", result),
            "400": bad,
            "403": answer("the link is unknown, used or expired: nothing recorded", result),
            "404": plain_text("no such destination or action, or event_id over 40 characters"),
            "408": _TOO_SLOW, "413": _TOO_LARGE,
        },
    }  # fmt: skip


def _links() -> dict[str, JsonObject]:
    return {
        "/notifications/link.js": {"get": {
            "operationId": "linkScript", "summary": "the link page's script", "security": [],
            "responses": {"200": {"description": "JavaScript",
                                  "content": {"text/javascript": {"schema": {"type": "string"}}}}},
        }},
        _LINK: {"get": {
            "operationId": "retiredLink", "security": [], "parameters": _link_parameters(
                action=False),
            "summary": "a link of the form used before single-use links: no longer valid",
            "responses": {"403": {"description": "a page saying the link is not valid",
                                  "content": _HTML}},
        }},
        _LINK + "/{action}": {
            "get": {"operationId": "linkPage", "security": [],
                    "summary": "the page a link opens (the token stays in the fragment)",
                    "parameters": _link_parameters(action=True),
                    "responses": {"200": {"description": "the form", "content": _HTML},
                                  "404": plain_text("no such destination or action, or "
                                                    "event_id over 40 characters")}},
            "post": _link_action(),
        },
    }  # fmt: skip


def http_document() -> JsonObject:
    """The document served at GET /openapi.json on the `http` listener."""
    return with_security_headers({
        "openapi": OPENAPI_VERSION,
        "info": info("Carebridge engine HTTP port", "Health, the follow-up list and the pages "
                     "behind the links of discharge notifications."),
        "paths": {**_health(), "/follow-ups": _follow_ups(), **_links(),
                  DOCUMENT_PATH: document_operation()},
        "components": {
            "schemas": {"Readiness": _READINESS, "FollowUp": _FOLLOW_UP,
                        "LinkResult": _LINK_RESULT, "LinkError": _LINK_ERROR},
            "securitySchemes": {"listToken": {"type": "http", "scheme": "bearer",
                                              "description": "follow_up.list_token"}},
        },
    })  # fmt: skip
