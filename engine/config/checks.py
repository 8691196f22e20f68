"""Checks across areas, once every model is valid: names are unique, routes name known sources
and destinations, destinations name known retry policies, listeners do not clash."""

from __future__ import annotations

from engine.config.root import Config


def cross_check(raw: Config) -> list[str]:
    problems: list[str] = []
    for name in raw.alerts.silent_sources if raw.alerts else {}:
        if raw.source(name) is None:
            problems.append(f"alerts.silent_sources.{name}: no source named {name!r}")
    listening: dict[tuple[str, int], str] = {}
    for i, source in enumerate(raw.sources):
        if source.fhir is not None and raw.fhir_http is None:
            problems.append(f"sources[{i}].fhir: needs the top-level fhir_http listener")
        if source.mllp is not None and source.mllp.port != 0:
            where = (source.mllp.host, source.mllp.port)
            if where in listening:
                problems.append(f"sources[{i}].mllp.port: {where[1]} is already the MLLP port "
                                f"of source {listening[where]!r}")  # fmt: skip
            listening[where] = source.name
    for kind, items in (
        ("sources", raw.sources),
        ("destinations", raw.destinations),
        ("routes", raw.routes),
    ):
        seen: set[str] = set()
        for i, item in enumerate(items):
            if item.name in seen:
                problems.append(f"{kind}[{i}].name: duplicate name {item.name!r}")
            seen.add(item.name)
    sources = {s.name for s in raw.sources}
    destinations = {d.name for d in raw.destinations}
    for i, dest in enumerate(raw.destinations):
        if dest.retry not in raw.retry_policies:
            problems.append(f"destinations[{i}].retry: no retry policy named {dest.retry!r}")
    problems += _shared_mailboxes(raw)
    for i, route in enumerate(raw.routes):
        for j, name in enumerate(route.to):
            if name not in destinations:
                problems.append(f"routes[{i}].to[{j}]: no destination named {name!r}")
        for j, name in enumerate(route.match.sources or []):
            if name not in sources:
                problems.append(f"routes[{i}].match.sources[{j}]: no source named {name!r}")
    return problems


def _shared_mailboxes(raw: Config) -> list[str]:
    """Two MESH destinations on one trust mailbox would each read the other's acknowledgements
    from the shared inbox, keep them as unmatched and remove them from MESH: refused."""
    problems: list[str] = []
    owner: dict[str, str] = {}
    for i, dest in enumerate(raw.destinations):
        if dest.type != "mesh":
            continue
        mailbox = dest.mailbox.upper()
        if mailbox in owner:
            problems.append(f"destinations[{i}].mailbox: {dest.mailbox} is already the mailbox of "
                            f"{owner[mailbox]!r}; each MESH destination needs its own")  # fmt: skip
        owner.setdefault(mailbox, dest.name)
    return problems
