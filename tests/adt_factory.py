"""Synthetic NHS-style HL7v2 ADT traffic for end-to-end tests and benchmarks.

Every patient is invented: names are drawn from a canary list so a test can prove that none of
them reaches a log line, and NHS numbers are generated with a valid modulus-11 check digit in
the 999 test range reserved for exactly this.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mappings.nhs_number import check_digit

CANARY_FAMILY = "ZZCANARYFAMILY"
CANARY_GIVEN = "ZZCANARYGIVEN"


def synthetic_nhs_numbers(count: int, start: int = 0) -> list[str]:
    """`count` distinct valid NHS numbers from the reserved 999 test range."""
    found: list[str] = []
    n = start
    while len(found) < count:
        nine = f"999{n:06d}"
        digit = check_digit(nine)
        if digit is not None:
            found.append(f"{nine}{digit}")
        n += 1
    return found


@dataclass(frozen=True)
class Patient:
    nhs_number: str
    mrn: str
    family: str
    given: str


def patients(count: int, *, run: str = "R") -> list[Patient]:
    return [
        Patient(nhs, f"{run}{i:05d}", f"{CANARY_FAMILY}{i}", f"{CANARY_GIVEN}{i}")
        for i, nhs in enumerate(synthetic_nhs_numbers(count))
    ]


def adt(
    trigger: str,
    patient: Patient,
    control_id: str,
    when: datetime,
    *,
    ward: str = "WARD1",
    prior_ward: str | None = None,
    feed: str = "RXTEPR",
) -> bytes:
    """One ITK-style ADT message (v2.4, CR separators)."""
    ts = when.strftime("%Y%m%d%H%M%S")
    structure = {"A01": "ADT_A01", "A02": "ADT_A02", "A03": "ADT_A03"}.get(trigger, "ADT_A01")
    pv1 = [""] * 46
    pv1[1] = "1"
    pv1[2] = "I"
    pv1[3] = f"RXT^{ward}^BED1^RXT01"
    pv1[4] = "21"
    pv1[6] = f"RXT^{prior_ward}^BED2^RXT01" if prior_ward else ""
    pv1[9] = "C1234567^CONSULTANT^ANNE^^^Dr"
    pv1[10] = "710"
    pv1[19] = f"V{patient.mrn}"
    pv1[44] = ts
    if trigger == "A03":
        pv1[36] = "1"
        pv1[37] = "19"
        pv1[45] = ts
    segments = [
        f"MSH|^~\\&|{feed}|RXT|CAREBRIDGE|NHS|{ts}||ADT^{trigger}^{structure}|{control_id}|P|2.4"
        f"|||||GBR|UNICODE UTF-8|||ITKv1.0",
        f"EVN|{trigger}|{ts}||||{ts}",
        f"PID|1||{patient.nhs_number}^^^NHS^NH~{patient.mrn}^^^RXT^MR||{patient.family}^"
        f"{patient.given}^^^Mx||19800101|2|||1 Test Street^^Leeds^^LS1 1AA^GBR^H",
        "PD1|||TEST PRACTICE^^B12345|G1234567",
        "|".join(["PV1", *pv1[1:]]),
    ]
    return ("\r".join(segments) + "\r").encode()


def stream(
    patient_list: list[Patient], per_patient: int, *, run: str = "R", start: datetime | None = None
) -> list[tuple[Patient, str, bytes]]:
    """Interleaved traffic: each patient is admitted, moved between wards, then discharged.

    Returns (patient, control id, message) in publication order; a patient's control ids are in
    the order their events happened.
    """
    start = start or datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    out: list[tuple[Patient, str, bytes]] = []
    for step in range(per_patient):
        for i, patient in enumerate(patient_list):
            trigger = "A01" if step == 0 else "A03" if step == per_patient - 1 else "A02"
            control_id = f"{run}-{i:04d}-{step:04d}"
            when = start + timedelta(minutes=step * 10 + i)
            ward, prior = f"WARD{step % 7 + 1}", f"WARD{(step - 1) % 7 + 1}"
            out.append(
                (
                    patient,
                    control_id,
                    adt(
                        trigger,
                        patient,
                        control_id,
                        when,
                        ward=ward,
                        prior_ward=prior if trigger == "A02" else None,
                    ),
                )
            )
    return out
