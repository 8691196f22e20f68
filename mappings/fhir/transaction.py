"""A care event's FHIR messaging Bundle as a transaction a retry can never duplicate. Pure.

Each resource becomes an identifier-conditional request: the Patient and the Encounter are
conditional updates (``PUT Patient?identifier=<system>|<value>``), so sending the same event
again updates what the first send created; Organizations, Practitioners and Locations are
conditional creates (``ifNoneExist``), so they are created once and then found. A resource the
message gives no identifier gets one (`RESOURCE_ID_SYSTEM`, its stable id), so every request has
a condition. Resource ids are left out (a conditional update's body id must match whatever the
server found); references between entries are the Bundle's ``urn:uuid`` full URLs, which the
server resolves. The MessageHeader has no place in a transaction and is dropped.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

RESOURCE_ID_SYSTEM = "https://carebridge.nhs.uk/Id/resource"
NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
_UPDATED = frozenset({"Patient", "Encounter"})


def _condition(resource: dict[str, Any]) -> tuple[str, str]:
    identifiers = [i for i in resource.get("identifier", []) if i.get("system") and i.get("value")]
    nhs = [i for i in identifiers if i["system"] == NHS_NUMBER_SYSTEM]
    chosen = (nhs or identifiers or [None])[0]
    if chosen is None:
        return RESOURCE_ID_SYSTEM, str(resource["id"])
    return str(chosen["system"]), str(chosen["value"])


def to_transaction(message: dict[str, Any]) -> dict[str, Any]:
    """The transaction Bundle for a messaging Bundle from `outbound.render_fhir_message`."""
    entries: list[dict[str, Any]] = []
    for entry in message["entry"]:
        resource = dict(entry["resource"])
        kind = resource["resourceType"]
        if kind == "MessageHeader":
            continue
        system, value = _condition(resource)
        if system == RESOURCE_ID_SYSTEM:
            resource["identifier"] = [
                *resource.get("identifier", []),
                {"system": system, "value": value},
            ]
        resource.pop("id", None)
        query = f"identifier={quote(system, safe=':/')}|{quote(value, safe='')}"
        request = (
            {"method": "PUT", "url": f"{kind}?{query}"}
            if kind in _UPDATED
            else {"method": "POST", "url": kind, "ifNoneExist": query}
        )
        entries.append({"fullUrl": entry["fullUrl"], "resource": resource, "request": request})
    transaction: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": message["id"],
        "identifier": message["identifier"],
        "type": "transaction",
        "entry": entries,
    }
    if "timestamp" in message:
        transaction["timestamp"] = message["timestamp"]
    return transaction
