"""OpenAPI 3.1 documents of the engine's HTTP APIs, held as data and served by the engine.

    fhir_http listener ─► GET /openapi.json: `fhir_document()`  (POST /fhir/{source})
    http listener      ─► GET /openapi.json: `http_document()`  (health, follow-up list,
                                                                 acknowledgement links)

Each document says every path, method, parameter, body and answer (status, media type, body
shape, errors included) its listener's handlers give; `tests/api/test_documents.py` checks each
against the listener's router table, so a route added without documentation fails. The console
is a browser application (HTML pages, session cookie, CSRF) and has no document.

The documents name no source, destination, token or limit of a deployment: they are the same
for every engine of this version, so they are served without authentication (docs/api.md).
"""

from __future__ import annotations

from engine.openapi.common import DOCUMENT_PATH, document_route, documented_operations
from engine.openapi.engine_http import http_document
from engine.openapi.fhir import fhir_document

__all__ = [
    "DOCUMENT_PATH",
    "document_route",
    "documented_operations",
    "fhir_document",
    "http_document",
]
