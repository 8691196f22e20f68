"""What the engine's OpenAPI documents share: the document route, plain-text errors, and the
listener answers every route can give (408 body too slow, 413 body too large)."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import metadata
from typing import Any

import orjson
from aiohttp import web

DOCUMENT_PATH = "/openapi.json"
OPENAPI_VERSION = "3.1.0"
JsonObject = dict[str, Any]

SECURITY_HEADERS_NOTE = (
    "Every answer, errors included, carries Content-Security-Policy, X-Frame-Options: DENY, "
    "X-Content-Type-Options: nosniff, Referrer-Policy: no-referrer and Cache-Control: no-store "
    "(and Strict-Transport-Security over TLS or behind a TLS-terminating proxy). A listener "
    "that is full answers 503 text/plain with Retry-After before reading a request; a request "
    "that aiohttp cannot parse is 400 text/plain. Every GET also answers HEAD."
)
_SECURITY_HEADERS: dict[str, JsonObject] = {
    "Content-Security-Policy": {"schema": {"type": "string", "pattern": "frame-ancestors 'none'"}},
    "X-Frame-Options": {"schema": {"const": "DENY"}},
    "X-Content-Type-Options": {"schema": {"const": "nosniff"}},
    "Referrer-Policy": {"schema": {"const": "no-referrer"}},
    "Cache-Control": {"schema": {"const": "no-store"}},
}
"""Set on every answer by adapters/http_server.py: required on every documented response."""


def _version() -> str:
    try:
        return metadata.version("carebridge")
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


def info(title: str, description: str) -> JsonObject:
    return {"title": title, "version": _version(),
            "description": f"{description}\n\n{SECURITY_HEADERS_NOTE}"}  # fmt: skip


def plain_text(description: str) -> JsonObject:
    """An answer whose body is a short sentence in text/plain (aiohttp's error pages)."""
    return {"description": description, "content": {"text/plain": {"schema": {"type": "string"}}}}


def json_answer(description: str, schema: JsonObject, media: str = "application/json",
                headers: Mapping[str, JsonObject] | None = None) -> JsonObject:  # fmt: skip
    answer: JsonObject = {"description": description, "content": {media: {"schema": schema}}}
    if headers:
        answer["headers"] = dict(headers)
    return answer


RETRY_AFTER: JsonObject = {"description": "seconds to wait before sending again", "required": True,
                           "schema": {"type": "string", "pattern": "^[0-9]+$"}}  # fmt: skip


def document_operation() -> JsonObject:
    """GET /openapi.json on every listener that has a document."""
    return {"get": {
        "operationId": "openapi", "summary": "this document", "security": [],
        "responses": {"200": json_answer("the OpenAPI document of this listener",
                                         {"type": "object", "required": ["openapi", "paths"]})},
    }}  # fmt: skip


def document_route(document: Mapping[str, Any]) -> web.RouteDef:
    """`GET /openapi.json` answering `document` (serialised once)."""
    body = orjson.dumps(document)

    async def serve(_request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    return web.get(DOCUMENT_PATH, serve)


def documented_operations(document: Mapping[str, Any]) -> set[tuple[str, str]]:
    """(METHOD, path) of every operation the document describes."""
    methods = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
    return {(method.upper(), path) for path, item in document["paths"].items()
            for method in item if method in methods}  # fmt: skip


def with_security_headers(document: JsonObject) -> JsonObject:
    """`document` with the listener's security headers required on every response."""
    document.setdefault("components", {})["headers"] = {
        name: {**header, "required": True} for name, header in _SECURITY_HEADERS.items()
    }
    for item in document["paths"].values():
        for operation in item.values():
            for response in operation["responses"].values():
                refs = {
                    name: {"$ref": f"#/components/headers/{name}"} for name in _SECURITY_HEADERS
                }
                response["headers"] = {**refs, **response.get("headers", {})}
    return document
