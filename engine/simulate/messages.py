"""The HL7v2 message each simulated event is sent as (NHS ITK v2.4 style, local times without an
offset, as most feeds send them), with a share made messy but legal, and extra messages that a
correct engine must reject. Pure: the same events and seed give the same bytes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from engine.simulate.journeys import SimEvent

LONDON = ZoneInfo("Europe/London")
STRUCTURE = {"A01": "ADT_A01", "A02": "ADT_A02", "A03": "ADT_A03", "A08": "ADT_A01",
             "A13": "ADT_A01", "A21": "ADT_A21", "A22": "ADT_A21", "A31": "ADT_A05",
             "A40": "ADT_A39"}  # fmt: skip
MESSY = ("lf", "escape", "null", "zsegment")
"""Legal oddities real feeds send: LF segment ends, escape sequences, `""` nulls, Z-segments."""
INVALID = ("not_hl7", "unknown_trigger", "no_pid")
"""Inputs a correct engine rejects (with a reason the sender can see)."""


@dataclass(frozen=True, slots=True)
class SimMessage:
    control_id: str
    source: str
    payload: bytes
    event: SimEvent | None
    """None for an input that must be rejected."""
    variant: str
    """``clean``, ``messy:<oddities>`` or ``invalid:<kind>``."""
    message_id: str = ""
    """The id the engine knows the message by (MSH-10; a FHIR Bundle's identifier)."""

    def __post_init__(self) -> None:
        if not self.message_id:
            object.__setattr__(self, "message_id", self.control_id)


def local(moment: datetime) -> str:
    """An instant as an ITK timestamp: Europe/London wall-clock time, no offset."""
    return moment.astimezone(LONDON).strftime("%Y%m%d%H%M%S")


def _pid(event: SimEvent) -> str:
    p = event.patient
    died = event.discharge_destination == "79" and event.discharged_at is not None
    fields = [""] * 31
    fields[1] = "1"
    fields[3] = f"{p.nhs_number}^^^NHS^NH~{p.mrn}^^^{event.pathway.provider}^MR"
    fields[5] = f"{p.family}^{p.given}^^^^^L"
    fields[7] = p.birth_date.strftime("%Y%m%d")
    fields[8] = p.sex
    fields[11] = f"1 Sim Street^^Simtown^^{p.postcode}^GBR^H"
    fields[13] = "07700 900000^PRN^PH"
    if died and event.discharged_at is not None:
        fields[29], fields[30] = local(event.discharged_at), "Y"
    return "|".join(["PID", *fields[1:]]).rstrip("|")


def _pv1(event: SimEvent) -> str:
    provider = event.pathway.provider
    fields = [""] * 46
    fields[1], fields[2], fields[4] = "1", "I", "21"
    fields[3] = f"{provider}^{event.ward}^BED1^{event.site}"
    if event.prior_ward is not None:
        fields[6] = f"{provider}^{event.prior_ward}^BED1^{event.prior_site or event.site}"
    fields[9] = "C1234567^SIMCONSULTANT^ANNE^^^DR"
    fields[10] = event.treatment_function
    fields[14] = "19"
    fields[19] = event.stay
    if event.trigger == "A03" and event.discharged_at is not None:
        fields[36] = event.discharge_method or ""
        fields[37] = event.discharge_destination or ""
        fields[45] = local(event.discharged_at)
    fields[44] = local(event.admitted_at or event.at)
    return "|".join(["PV1", *fields[1:]])


def render(event: SimEvent, control_id: str, *, trigger: str | None = None) -> list[str]:
    """The segments of the message for `event` (its trigger, unless `trigger` overrides it)."""
    trigger = trigger or event.trigger
    structure = STRUCTURE.get(trigger, "ADT_A01")
    sent = local(event.at)
    segments = [
        f"MSH|^~\\&|SIMEPR|{event.pathway.provider}|CAREBRIDGE|NHS|{sent}||ADT^{trigger}^"
        f"{structure}|{control_id}|P|2.4|||||GBR|UNICODE UTF-8|||ITKv1.0",
        f"EVN|{trigger}|{sent}||||{sent}",
        _pid(event),
        f"PD1|||SIM PRACTICE^^{event.patient.practice}",
    ]
    if trigger == "A40":
        segments.append(f"MRG|{event.retired_mrn}^^^{event.pathway.provider}^MR")
    elif trigger != "A31":
        segments.append(_pv1(event))
    return segments


def _messy(segments: list[str], oddities: list[str]) -> bytes:
    if "escape" in oddities:
        pid = segments[2].split("|")
        pid[5] = pid[5].replace("^", "\\T\\AND\\T\\SONS^", 1)  # family name "X&AND&SONS"
        segments[2] = "|".join(pid)
    if "null" in oddities:
        pid = segments[2].split("|")
        pid[13] = '""'  # "delete the stored telephone number"
        segments[2] = "|".join(pid)
    if "zsegment" in oddities:
        segments.append("ZXX|1|SIMLOCAL|local extension")
    end = "\n" if "lf" in oddities else "\r"
    return (end.join(segments) + end).encode()


def messages(
    events: list[SimEvent], *, seed: int, messy_share: float, invalid_share: float
) -> list[SimMessage]:
    """Each event's message, in the order given, with `invalid_share` extra inputs that must be
    rejected inserted among them."""
    rng = random.Random(seed ^ 0x5EED)
    out: list[SimMessage] = []
    for n, event in enumerate(events):
        control_id = f"SIM{seed}-{event.journey:05d}-{event.index:02d}"
        segments = render(event, control_id)
        oddities = [o for o in MESSY if rng.random() < messy_share]
        variant = "messy:" + "+".join(oddities) if oddities else "clean"
        out.append(SimMessage(control_id, event.pathway.source, _messy(segments, oddities),
                              event, variant))  # fmt: skip
        if rng.random() < invalid_share:
            out.append(_invalid(rng, event, f"SIM{seed}-BAD-{n:06d}"))
    return out


def _invalid(rng: random.Random, near: SimEvent, control_id: str) -> SimMessage:
    kind = rng.choice(INVALID)
    if kind == "not_hl7":
        payload = b"this is not an HL7v2 message\r"
    elif kind == "unknown_trigger":
        payload = ("\r".join(render(near, control_id, trigger="A99")) + "\r").encode()
    else:
        segments = render(near, control_id, trigger="A01")
        payload = ("\r".join(s for s in segments if not s.startswith("PID")) + "\r").encode()
    return SimMessage(control_id, near.pathway.source, payload, None, f"invalid:{kind}")
