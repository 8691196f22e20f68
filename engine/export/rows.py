"""The export's rows, pure: a care event (and what became of it) to analytics rows with a keyed
pseudonym instead of any identifier, and nothing that names or locates a person.

Kept: provider, site, care setting, ward code, treatment function, event kind and times,
admission method, discharge destination and method, legal status codes, age band, GP practice
(an organisation), postcode district (the outward code only, e.g. ``LS1``), time to
notification, follow-up rule, due and done times. Never kept: names, NHS or local numbers,
dates of birth, addresses, telephone numbers, clinicians, free text.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import date, datetime
from typing import Any

from mappings.model import CareEvent, LegalStatusContext, TransitionKind

AGE_BANDS = ((0, "0-15"), (16, "16-17"), (18, "18-25"), (26, "26-64"), (65, "65+"))


class Pseudonymiser:
    """HMAC-SHA256 under a key that stays with the trust: the same patient has the same
    pseudonym in every export made with the key, and no pseudonym can be reversed or linked
    without it."""

    def __init__(self, key: str) -> None:
        if len(key) < 32:
            raise ValueError("the pseudonym key must be at least 32 characters")
        self._key = key.encode()

    def __call__(self, kind: str, value: str) -> str:
        digest = hmac.new(self._key, f"{kind}:{value}".encode(), hashlib.sha256)
        return digest.hexdigest()[:32]


def age_band(born: date | None, at: datetime | None) -> str | None:
    if born is None or at is None:
        return None
    on = at.date()
    years = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
    band = None
    for lower, label in AGE_BANDS:
        if years >= lower:
            band = label
    return band


def postcode_district(postcode: str | None) -> str | None:
    """The outward code of a UK postcode (``LS1 4AP`` -> ``LS1``); None if it is not one."""
    if not postcode:
        return None
    compact = "".join(postcode.split()).upper()
    if not 5 <= len(compact) <= 7 or not compact[-3].isdigit():
        return None
    return compact[:-3]


def _code(coding: Any) -> str | None:
    return coding.code if coding is not None else None


def _at(instant: Any) -> datetime | None:
    return instant.utc if instant is not None else None


def common(event: CareEvent, pseudonym: Pseudonymiser, patient_key: str) -> dict[str, Any]:
    """What every row of an event shares."""
    stay, patient = event.stay, event.patient
    when = _at(event.occurred_at) or event.received_at
    home = next((a for a in patient.addresses if a.use.value == "home"), None)
    return {
        "pseudonym": pseudonym("patient", patient_key),
        "event_ref": pseudonym("event", event.event_id),
        "source": event.source.feed,
        "care_setting": stay.care_setting.value if stay else "unknown",
        "provider_ods": stay.provider_ods if stay else None,
        "site_ods": stay.site_ods if stay else None,
        "ward": stay.location.ward if stay and stay.location else None,
        "treatment_function": _code(stay.specialty) if stay else None,
        "age_band": age_band(patient.birth_date, when),
        "gp_practice": patient.gp_practice_ods,
        "postcode_district": postcode_district(home.postcode if home else None),
    }


def transition_row(
    event: CareEvent, pseudonym: Pseudonymiser, patient_key: str, corrects: str | None
) -> dict[str, Any]:
    return {
        **common(event, pseudonym, patient_key),
        "kind": event.kind.value,
        "occurred_at": _at(event.occurred_at),
        "received_at": event.received_at,
        "corrects_ref": pseudonym("event", corrects) if corrects else None,
    }


def _legal_status(event: CareEvent, context: LegalStatusContext) -> str | None:
    if event.stay is None:
        return None
    found = [s for s in event.stay.legal_status if s.context is context]
    current = [s for s in event.stay.legal_status if s.context is LegalStatusContext.CURRENT]
    chosen = (found or current)[-1:] if (found or current) else []
    return chosen[0].code.code if chosen else None


def spell_row(
    event: CareEvent, pseudonym: Pseudonymiser, patient_key: str, notified_at: datetime | None
) -> dict[str, Any]:
    """A discharge: the spell it ends."""
    stay = event.stay
    admitted = _at(stay.admitted_at) if stay else None
    discharged = (_at(stay.discharged_at) if stay else None) or _at(event.occurred_at)
    stay_days = (discharged - admitted).total_seconds() / 86400 if admitted and discharged else None
    received = event.received_at
    to_notice = (notified_at - received).total_seconds() if notified_at and received else None
    return {
        **common(event, pseudonym, patient_key),
        "admitted_at": admitted,
        "discharged_at": discharged,
        "length_of_stay_days": stay_days,
        "admission_method": _code(stay.admission_method) if stay else None,
        "discharge_destination": _code(stay.discharge_destination) if stay else None,
        "discharge_method": _code(stay.discharge_method) if stay else None,
        "legal_status_on_admission": _legal_status(event, LegalStatusContext.ADMISSION),
        "legal_status_at_discharge": _legal_status(event, LegalStatusContext.DISCHARGE),
        "notified_at": notified_at,
        "seconds_to_notification": to_notice,
        **_transitions(event),
    }


def _transitions(event: CareEvent) -> dict[str, bool]:
    """The transition-of-care flags the engine set on the discharge (its reasons, free text,
    stay out)."""
    kinds = {t.kind for t in event.transitions}
    return {
        "to_adult_services": TransitionKind.TO_ADULT_SERVICES in kinds,
        "out_of_area": TransitionKind.OUT_OF_AREA in kinds,
    }


def follow_up_row(
    event: CareEvent,
    pseudonym: Pseudonymiser,
    patient_key: str,
    clock: tuple[str, str, datetime, datetime, datetime | None, datetime | None],
) -> dict[str, Any]:
    """A follow-up whose outcome is known: `clock` is (rule, standard, discharged, due,
    acknowledged, done)."""
    rule, standard, discharged, due, acknowledged, done = clock
    met = done is not None and done <= due
    hours = (done - discharged).total_seconds() / 3600 if done is not None and met else None
    return {
        **common(event, pseudonym, patient_key),
        "rule": rule,
        "standard": standard,
        "discharged_at": discharged,
        "due_at": due,
        "acknowledged_at": acknowledged,
        "done_at": done if met else None,
        "met": met,
        "hours_to_done": hours,
    }
