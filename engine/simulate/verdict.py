"""The verdict: what each destination received, held against the ground truth. Pure.

Per destination: expected, delivered, missing, duplicated (the same event delivered under more
than one idempotency key or MSH-10, so a receiver could not drop the repeat; a repeat under the
same key is a retry and is only counted), out of order (patients whose events arrived in another
order than they happened), wrong recipient (a notification that reached another recipient than
the config's rules choose), unexpected (an event, or a rejected input, that should not have come).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from engine.simulate.truth import Expected


@dataclass(frozen=True, slots=True)
class Receipt:
    """One request or frame a receiver got."""

    destination: str
    receiver: str
    """The recipient's name for a notification destination, else the destination's."""
    event_id: str | None
    key: str
    """The Idempotency-Key, or the MLLP MSH-10."""


@dataclass(slots=True)
class DestinationVerdict:
    destination: str
    expected: int = 0
    delivered: int = 0
    retries: int = 0
    missing: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    out_of_order: list[str] = field(default_factory=list)
    wrong_recipient: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    @property
    def defects(self) -> int:
        return sum(len(x) for x in (self.missing, self.duplicated, self.out_of_order,
                                    self.wrong_recipient, self.unexpected))  # fmt: skip


def verdict(
    truth: list[Expected], receipts: list[Receipt], destinations: list[str]
) -> list[DestinationVerdict]:
    """One verdict per destination in `destinations` (the ones receivers listened for)."""
    return [
        _one(name, truth, [r for r in receipts if r.destination == name]) for name in destinations
    ]


def _one(name: str, truth: list[Expected], got: list[Receipt]) -> DestinationVerdict:
    wanted = [t for t in truth if name in t.receipts and t.event_id is not None]
    result = DestinationVerdict(name, expected=len(wanted))
    by_event: dict[str | None, list[Receipt]] = defaultdict(list)
    for receipt in got:
        by_event[receipt.event_id].append(receipt)
    expected_ids = {t.event_id for t in wanted}
    result.delivered = len([e for e in by_event if e in expected_ids])
    result.missing = [t.control_id for t in wanted if t.event_id not in by_event]
    result.unexpected = [str(e) for e in by_event if e not in expected_ids]
    for event, receipts in by_event.items():
        keys = {r.key for r in receipts}
        result.retries += len(receipts) - len(keys)
        if len(keys) > 1:
            result.duplicated.append(str(event))
    for line in wanted:
        receivers = {r.receiver for r in by_event.get(line.event_id, [])}
        if receivers and receivers != {line.receipts[name]}:
            result.wrong_recipient.append(line.control_id)
    result.out_of_order = _out_of_order(wanted, got)
    return result


def _out_of_order(wanted: list[Expected], got: list[Receipt]) -> list[str]:
    """Patients whose events' first arrivals are not in the order the events were sent."""
    first_arrival: dict[str, int] = {}
    for n, receipt in enumerate(got):
        if receipt.event_id is not None:
            first_arrival.setdefault(receipt.event_id, n)
    sent: dict[str, list[Expected]] = defaultdict(list)
    for line in wanted:
        if line.patient is not None and line.event_id in first_arrival:
            sent[line.patient].append(line)
    wrong = []
    for patient, lines in sent.items():
        arrivals = [first_arrival[str(line.event_id)] for line in lines]
        if arrivals != sorted(arrivals):
            wrong.append(patient)
    return wrong


HEADER = ("destination", "expected", "delivered", "missing", "duplicated", "out of order",
          "wrong recipient", "unexpected", "retries")  # fmt: skip


def table(verdicts: list[DestinationVerdict]) -> str:
    rows = [HEADER] + [
        (
            v.destination,
            str(v.expected),
            str(v.delivered),
            str(len(v.missing)),
            str(len(v.duplicated)),
            str(len(v.out_of_order)),
            str(len(v.wrong_recipient)),
            str(len(v.unexpected)),
            str(v.retries),
        )
        for v in verdicts
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = ["  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in
                       enumerate(zip(row, widths, strict=True))) for row in rows]  # fmt: skip
    return "\n".join(lines)
