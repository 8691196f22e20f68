"""The audit rows of the console's reads: every list that shows patient identifiers (message
search results, dead letters, the kept MESH inbox messages) to a role that sees them, and every
read of the audit log.

Each row says who (the signed-in user and role), when, what was asked (the action, the filters
as given, the page) and how many rows were shown, with the ids of the messages (or audit
entries) listed, so the patients a list showed can be found again. Nothing of a patient beyond
what the audit log already keeps: the searched term and the patient key of a patient search,
the patient key a reader filtered the audit log by. The row is written before the page is
answered: if the audit log cannot be written, the page is not shown.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from engine.console.auth import Principal
from engine.store import Store, audit

_VALUE_LIMIT = 100


def id_ranges(ids: Iterable[int]) -> str:
    """Ids newest first, consecutive runs as ranges: ``119-117,95``."""
    runs: list[list[int]] = []
    for i in sorted(set(ids), reverse=True):
        if runs and runs[-1][-1] == i + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return ",".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


def listing(
    filters: Mapping[str, str | None],
    ids: Sequence[int] | Sequence[str],
    *,
    before: int | None,
    what: str,
) -> str:
    """``filters source='mh-trust'; before id 120; 2 rows: messages 119-118`` (ids that are
    not numbers, such as MESH message ids, are listed as they are)."""
    given = [f"{k}={v[:_VALUE_LIMIT]!r}" for k, v in filters.items() if v]
    parts = [f"filters {', '.join(given)}" if given else "no filters"]
    if before is not None:
        parts.append(f"before id {before}")
    shown = f"{len(ids)} rows"
    if ids:
        numbers = [i for i in ids if isinstance(i, int)]
        listed = id_ranges(numbers) if len(numbers) == len(ids) else ",".join(map(str, ids))
        shown += f": {what} {listed}"
    return "; ".join([*parts, shown])


async def record_read(
    store: Store,
    principal: Principal,
    action: str,
    detail: str,
    *,
    patient_key: str | None = None,
    reason: str | None = None,
) -> None:
    """One audit row for one read, in a transaction of its own."""
    entry = audit.AuditEntry(action, patient_key=patient_key, reason=reason, detail=detail)
    await audit.record(store, principal, entry)
