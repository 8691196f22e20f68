"""The HL7 v2 corpus (``../shared/corpus``): every message maps or is refused with a precise
reason, and what maps agrees with other converters' expected FHIR output field by field,
except for the differences listed here, each with the reason it is deliberate.

Both tables are explicit, so any change in behaviour fails a test until the table is updated
(and docs/mapping.md with it). The corpus lives outside the repository: these tests are
skipped when it is absent; ``CAREBRIDGE_CORPUS`` points them at another copy. To see the
tables as they are now::

    .venv/bin/python -m tests.conformance.test_hl7v2_corpus
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from mappings.errors import MappingError
from mappings.hl7v2.inbound import map_hl7v2
from mappings.model import CareEvent, Instant
from mappings.profile import FeedProfile

CORPUS = Path(
    os.environ.get("CAREBRIDGE_CORPUS") or Path(__file__).resolve().parents[3] / "shared" / "corpus"
)
PROFILE = FeedProfile(feed="corpus")

pytestmark = pytest.mark.skipif(
    not (CORPUS / "INDEX.tsv").is_file(), reason=f"HL7 v2 corpus not found at {CORPUS}"
)

# --- what becomes of each message -----------------------------------------------------------

# Every HL7 v2 file of INDEX.tsv (ADT, plus two non-ADT robustness samples), relative to
# hl7v2/: "maps <event kind>" or "rejected <HL7 error code> <location>: <reason>".
OUTCOMES: dict[str, str] = {
    "efferent-hl7-dotnetcore/Sample-ADT.txt": (
        "rejected 201 MSH-9.2: trigger event O01 is not supported"
    ),
    "google-healthcare-data-harmonization/adt_a01.hl7": "maps admission",
    "google-healthcare-data-harmonization/adt_a01_ex1.hl7": "maps admission",
    "google-healthcare-data-harmonization/adt_a01_ex2.hl7": "maps admission",
    "google-healthcare-data-harmonization/adt_a01_ex3.hl7": "maps admission",
    "google-healthcare-data-harmonization/adt_a04_ex1.hl7": "maps registration",
    "google-healthcare-data-harmonization/adt_a08_ex1.hl7": "maps update",
    "google-healthcare-data-harmonization/rde_o01_ex1.hl7": (
        "rejected 200 MSH-9.1: message type RDE is not supported"
    ),
    "google-simhospital/messages_out_line0009_a01_first.hl7": "maps admission",
    "google-simhospital/messages_out_line0225_a01_allergies.hl7": "maps admission",
    "google-simhospital/messages_out_line0541_a34_merge.hl7": "maps merge",
    "hamaluik-hl7-parser/sample_adt_a01.hl7": "maps admission",
    "hamaluik-hl7-parser/sample_adt_a01_encoded.hl7": (
        "rejected 100 PV1: PV1 segment missing from an A08"
    ),
    "hamaluik-hl7-parser/sample_adt_a02.hl7": "maps transfer",
    "hamaluik-hl7-parser/sample_adt_a03.hl7": "maps discharge",
    "hamaluik-hl7-parser/sample_adt_a04.hl7": "maps registration",
    "hamaluik-hl7-parser/sample_adt_a08.hl7": "maps update",
    "hamaluik-hl7-parser/sample_oru_r01_lab.hl7": (
        "rejected 200 MSH-9.1: message type ORU is not supported"
    ),
    "linuxforhealth-hl7v2-fhir-converter/sample_unix.hl7": "maps admission",
    "linuxforhealth-hl7v2-fhir-converter/sample_win.hl7": "maps admission",
    "microsoft-fhir-converter/ADT-A01-01.hl7": "maps admission",
    "microsoft-fhir-converter/ADT-A01-02.hl7": "maps admission",
    "microsoft-fhir-converter/ADT-A02-01.hl7": "maps transfer",
    "microsoft-fhir-converter/ADT-A02-02.hl7": "maps transfer",
    "microsoft-fhir-converter/ADT-A03-01.hl7": "maps discharge",
    "microsoft-fhir-converter/ADT-A03-02.hl7": "maps discharge",
    "microsoft-fhir-converter/ADT-A04-01.hl7": "maps registration",
    "microsoft-fhir-converter/ADT-A04-02.hl7": "maps registration",
    "microsoft-fhir-converter/ADT-A05-01.hl7": "maps pre_admission",
    "microsoft-fhir-converter/ADT-A05-02.hl7": "maps pre_admission",
    "microsoft-fhir-converter/ADT-A06-01.hl7": "maps admission",
    "microsoft-fhir-converter/ADT-A06-02.hl7": "maps admission",
    "microsoft-fhir-converter/ADT-A07-01.hl7": "maps discharge",
    "microsoft-fhir-converter/ADT-A07-02.hl7": "maps discharge",
    "microsoft-fhir-converter/ADT-A08-01.hl7": "maps update",
    "microsoft-fhir-converter/ADT-A08-02.hl7": "maps update",
    "microsoft-fhir-converter/ADT-A09-01.hl7": (
        "rejected 201 MSH-9.2: trigger event A09 (patient departing - tracking) is not supported"
    ),
    "microsoft-fhir-converter/ADT-A09-02.hl7": (
        "rejected 201 MSH-9.2: trigger event A09 (patient departing - tracking) is not supported"
    ),
    "microsoft-fhir-converter/ADT-A10-01.hl7": (
        "rejected 201 MSH-9.2: trigger event A10 (patient arriving - tracking) is not supported"
    ),
    "microsoft-fhir-converter/ADT-A10-02.hl7": (
        "rejected 201 MSH-9.2: trigger event A10 (patient arriving - tracking) is not supported"
    ),
    "microsoft-fhir-converter/ADT-A11-01.hl7": "maps cancel_admission",
    "microsoft-fhir-converter/ADT-A11-02.hl7": "maps cancel_admission",
    "microsoft-fhir-converter/ADT-A13-01.hl7": "maps cancel_discharge",
    "microsoft-fhir-converter/ADT-A13-02.hl7": "maps cancel_discharge",
    "microsoft-fhir-converter/ADT-A14-01.hl7": (
        "rejected 201 MSH-9.2: trigger event A14 (pending admit) is not supported"
    ),
    "microsoft-fhir-converter/ADT-A14-02.hl7": (
        "rejected 201 MSH-9.2: trigger event A14 (pending admit) is not supported"
    ),
    "microsoft-fhir-converter/ADT-A15-01.hl7": (
        "rejected 201 MSH-9.2: trigger event A15 (pending transfer) is not supported"
    ),
    "microsoft-fhir-converter/ADT-A15-02.hl7": (
        "rejected 201 MSH-9.2: trigger event A15 (pending transfer) is not supported"
    ),
    "microsoft-fhir-converter/ADT-A16-01.hl7": (
        "rejected 201 MSH-9.2: trigger event A16 (pending discharge) is not supported"
    ),
    "microsoft-fhir-converter/ADT-A16-02.hl7": (
        "rejected 201 MSH-9.2: trigger event A16 (pending discharge) is not supported"
    ),
    "microsoft-fhir-converter/ADT-A25-01.hl7": (
        "rejected 201 MSH-9.2: trigger event A25 (cancel pending discharge) is not supported"
    ),
    "microsoft-fhir-converter/ADT-A25-02.hl7": (
        "rejected 201 MSH-9.2: trigger event A25 (cancel pending discharge) is not supported"
    ),
    "microsoft-fhir-converter/ADT-A26-01.hl7": (
        "rejected 201 MSH-9.2: trigger event A26 (cancel pending transfer) is not supported"
    ),
    "microsoft-fhir-converter/ADT-A26-02.hl7": (
        "rejected 201 MSH-9.2: trigger event A26 (cancel pending transfer) is not supported"
    ),
    "microsoft-fhir-converter/ADT-A27-01.hl7": (
        "rejected 201 MSH-9.2: trigger event A27 (cancel pending admit) is not supported"
    ),
    "microsoft-fhir-converter/ADT-A27-02.hl7": (
        "rejected 201 MSH-9.2: trigger event A27 (cancel pending admit) is not supported"
    ),
    "microsoft-fhir-converter/ADT-A28-01.hl7": "maps person_update",
    "microsoft-fhir-converter/ADT-A28-02.hl7": "maps person_update",
    "microsoft-fhir-converter/ADT-A29-01.hl7": (
        "rejected 201 MSH-9.2: trigger event A29 (delete person information) is not supported"
    ),
    "microsoft-fhir-converter/ADT-A29-02.hl7": (
        "rejected 201 MSH-9.2: trigger event A29 (delete person information) is not supported"
    ),
    "microsoft-fhir-converter/ADT-A31-01.hl7": "maps person_update",
    "microsoft-fhir-converter/ADT-A31-02.hl7": "maps person_update",
    "microsoft-fhir-converter/ADT-A40-01.hl7": "maps merge",
    "microsoft-fhir-converter/ADT-A40-02.hl7": (
        "rejected 100 MRG: more than one PID/MRG pair; send one merge per message"
    ),
    "microsoft-fhir-converter/ADT-A41-01.hl7": (
        "rejected 201 MSH-9.2: trigger event A41 (merge account - pat"
        "ient account number) is not supported"
    ),
    "microsoft-fhir-converter/ADT-A41-02.hl7": (
        "rejected 201 MSH-9.2: trigger event A41 (merge account - pat"
        "ient account number) is not supported"
    ),
    "microsoft-fhir-converter/ADT-A45-01.hl7": (
        "rejected 201 MSH-9.2: trigger event A45 (move visit informat"
        "ion - visit number) is not supported"
    ),
    "microsoft-fhir-converter/ADT-A45-02.hl7": (
        "rejected 201 MSH-9.2: trigger event A45 (move visit informat"
        "ion - visit number) is not supported"
    ),
    "microsoft-fhir-converter/ADT-A47-01.hl7": (
        "rejected 201 MSH-9.2: trigger event A47 (change patient identifier list) is not supported"
    ),
    "microsoft-fhir-converter/ADT-A47-02.hl7": (
        "rejected 201 MSH-9.2: trigger event A47 (change patient identifier list) is not supported"
    ),
    "microsoft-fhir-converter/ADT-A60-01.hl7": (
        "rejected 201 MSH-9.2: trigger event A60 (update allergy information) is not supported"
    ),
    "microsoft-fhir-converter/ADT-A60-02.hl7": (
        "rejected 201 MSH-9.2: trigger event A60 (update allergy information) is not supported"
    ),
    "microsoft-fhir-converter/ADT01-23.hl7": "maps admission",
    "microsoft-fhir-converter/ADT01-28.hl7": "maps admission",
    "microsoft-fhir-converter/ADT04-23.hl7": "maps registration",
    "microsoft-fhir-converter/ADT04-251.hl7": "maps registration",
    "microsoft-fhir-converter/ADT04-28.hl7": "maps registration",
    "pipehat/sample-v2.3-adt-a01-1.hl7": "maps admission",
    "python-hl7/sample_batch_adt_a04.hl7": (
        "rejected 100 BHS: batch and file wrappers (FHS/BHS) are not "
        "accepted; send one message at a time"
    ),
    "python-hl7/sample_file1_fhs_bhs_adt_a04.hl7": (
        "rejected 100 FHS: batch and file wrappers (FHS/BHS) are not "
        "accepted; send one message at a time"
    ),
    "python-hl7/sample_msh_adt_a01.hl7": "maps admission",
    "ruby-hl7/adt_a01.hl7": "maps admission",
}

# --- how what maps compares with other converters -------------------------------------------

# Why a difference from another converter's FHIR output is deliberate (docs/mapping.md says
# more). Keys are what the ACCEPTED table below refers to.
REASONS: dict[str, str] = {
    "identifiers-pid-3": (
        "Patient identifiers come from PID-3 (PID-2 only as a fallback); the converters also"
        " make identifiers of PID-2/4 alternates, PID-18 account, PID-19 SSN, PID-20 driving"
        " licence and guarantor/insurance numbers, which are not NHS patient identity"
    ),
    "names-pid-5": (
        "Names come from PID-5 (given + middle); the converters add PID-9 aliases, XPN.15"
        " 'called by' and (Microsoft) guarantor or insured names from GT1/IN2"
    ),
    "person-events-no-stay": (
        "A28/A31 carry demographics only: no stay is mapped from their placeholder PV1, where"
        " Microsoft builds an Encounter"
    ),
    "merge-as-linkage": (
        "Microsoft renders A40 as a Linkage without a Patient; we map the surviving patient"
        " and the retired identifiers"
    ),
    "period-expected-dates": (
        "Encounter.period comes from PV1-44/PV1-45, actual admission and discharge only;"
        " Microsoft falls back to PV2-8/PV2-9, the expected dates"
    ),
    "period-offsetless-zone": (
        "A time without an offset is Europe/London wall-clock time (GMT or BST); Whistle"
        " gives it a fixed offset of its own"
    ),
    "whistle-input-differs": (
        "Whistle's expected output was made from a JSON form of the message that is not in"
        " the corpus, and its admission year differs from the .hl7 text's PV1-44"
    ),
    "class-not-in-their-map": (
        "Patient class R (recurring) is kept as its v2-0004 code; Whistle maps it to unknown"
    ),
    "location-pda-first": (
        "With a PDA segment, Microsoft lists the death location (PDA-2) first in"
        " Encounter.location; PV1-3.1 is their second"
    ),
    "cancel-discharge-fields": (
        "A13's PV1-36/37/45 describe the discharge it cancels and are not mapped; Microsoft"
        " keeps them on the Encounter"
    ),
    "a07-ends-inpatient-stay": (
        "An A07 ends the inpatient stay (issue 13 point 2): its Encounter is the inpatient one"
        " (IMP, not the new class in PV1-2), ended at EVN-6, on the ward of PV1-6; Microsoft"
        " describes the outpatient visit that follows (AMB, no end, PV1-3)"
    ),
}

# (file pattern, field, kind) → reason. Kinds: "differs" (a value), "missing" (theirs has
# values ours lacks), "extra" (ours has values theirs lacks). The first matching entry explains a
# difference. A new difference not matched here fails, and so does an entry that no longer
# explains anything.
ACCEPTED: dict[tuple[str, str, str], str] = {
    ("microsoft-fhir-converter/ADT-A07-0[12].hl7", "class", "differs"): "a07-ends-inpatient-stay",
    ("microsoft-fhir-converter/ADT-A07-0[12].hl7", "period.end", "differs"): (
        "a07-ends-inpatient-stay"
    ),
    ("microsoft-fhir-converter/ADT-A07-02.hl7", "location.point_of_care", "differs"): (
        "a07-ends-inpatient-stay"
    ),
    ("*", "identifiers", "missing"): "identifiers-pid-3",
    ("*", "name", "missing"): "names-pid-5",
    ("microsoft-fhir-converter/ADT-A0[1-8]-0[12].hl7", "name", "extra"): "names-pid-5",
    ("microsoft-fhir-converter/ADT-A1[13]-0[12].hl7", "name", "extra"): "names-pid-5",
    ("microsoft-fhir-converter/ADT-A2[8]-0[12].hl7", "name", "extra"): "names-pid-5",
    ("microsoft-fhir-converter/ADT-A3[1]-0[12].hl7", "name", "extra"): "names-pid-5",
    ("microsoft-fhir-converter/ADT-A2[8]-0[12].hl7", "encounter", "missing"): (
        "person-events-no-stay"
    ),
    ("microsoft-fhir-converter/ADT-A31-0[12].hl7", "encounter", "missing"): (
        "person-events-no-stay"
    ),
    ("microsoft-fhir-converter/ADT-A40-01.hl7", "patient", "missing"): "merge-as-linkage",
    ("microsoft-fhir-converter/ADT-A0[45]-01.hl7", "period.end", "differs"): (
        "period-expected-dates"
    ),
    ("microsoft-fhir-converter/ADT-A11-01.hl7", "period.end", "differs"): "period-expected-dates",
    ("microsoft-fhir-converter/ADT-A05-01.hl7", "period.start", "differs"): (
        "period-expected-dates"
    ),
    ("google-healthcare-data-harmonization/adt_a01.hl7", "period.start", "differs"): (
        "whistle-input-differs"
    ),
    ("google-healthcare-data-harmonization/*", "period.*", "differs"): "period-offsetless-zone",
    ("google-healthcare-data-harmonization/adt_a08_ex1.hl7", "class", "differs"): (
        "class-not-in-their-map"
    ),
    ("microsoft-fhir-converter/ADT-A*-01.hl7", "location.point_of_care", "differs"): (
        "location-pda-first"
    ),
    ("microsoft-fhir-converter/ADT-A13-0[12].hl7", "discharge_disposition", "differs"): (
        "cancel-discharge-fields"
    ),
}

_V3_CLASS = {"I": "IMP", "O": "AMB", "E": "EMER", "P": "PRENC"}


@dataclass(frozen=True)
class Difference:
    file: str
    field: str
    kind: str
    ours: object
    theirs: object

    def __str__(self) -> str:
        return f"{self.file}: {self.field} {self.kind}: ours {self.ours!r}, theirs {self.theirs!r}"


def index() -> list[str]:
    """Every HL7 v2 file of the corpus index, relative to hl7v2/."""
    with (CORPUS / "INDEX.tsv").open(encoding="utf-8") as rows:
        return [
            row["path"].removeprefix("hl7v2/")
            for row in csv.DictReader(rows, delimiter="\t")
            if row["format"] == "hl7v2"
        ]


def pairs() -> dict[str, Path]:
    """Each HL7 v2 file with an expected FHIR output, and that output."""
    with (CORPUS / "expected" / "PAIRS.tsv").open(encoding="utf-8") as rows:
        return {
            row["hl7v2_input"].removeprefix("hl7v2/"): CORPUS / row["expected_fhir_output"]
            for row in csv.DictReader(rows, delimiter="\t")
        }


@cache
def outcome(file: str) -> tuple[str, CareEvent | None]:
    try:
        event = map_hl7v2((CORPUS / "hl7v2" / file).read_bytes(), PROFILE)
    except MappingError as error:
        return f"rejected {error.code} {error}", None
    return f"maps {event.kind.value}", event


def differences(file: str, event: CareEvent, bundle: dict[str, Any]) -> Iterator[Difference]:
    """Where `event` and another converter's Bundle disagree, field by field."""
    resources = {
        f"{e['resource']['resourceType']}/{e['resource']['id']}": e["resource"]
        for e in bundle["entry"]
        if "id" in e["resource"]
    }
    patient = _first(bundle, "Patient")
    encounter = _first(bundle, "Encounter")
    if patient is None:
        yield Difference(file, "patient", "missing", "Patient", None)
    else:
        yield from _patient(file, event, patient)
    if encounter is not None and event.stay is None:
        yield Difference(file, "encounter", "missing", None, "Encounter")
    elif encounter is not None:
        yield from _encounter(file, event, encounter, resources)


def _patient(file: str, event: CareEvent, fhir: dict[str, Any]) -> Iterator[Difference]:
    ours = event.patient
    yield from _sets(
        file,
        "identifiers",
        {i.value for i in ours.identifiers},
        {i["value"] for i in fhir.get("identifier", []) if "value" in i},
    )
    yield from _sets(
        file,
        "name",
        {f"{n.family}|{' '.join(n.given)}" for n in ours.names},
        {f"{n.get('family')}|{' '.join(n.get('given', []))}" for n in fhir.get("name", [])},
    )
    birth = ours.birth_date.isoformat() if ours.birth_date else None
    yield from _scalar(file, "birth_date", birth, fhir.get("birthDate"))
    yield from _scalar(file, "gender", ours.gender, fhir.get("gender"))


def _encounter(
    file: str, event: CareEvent, fhir: dict[str, Any], resources: dict[str, dict[str, Any]]
) -> Iterator[Difference]:
    stay = event.stay
    assert stay is not None
    patient_class = stay.patient_class.code if stay.patient_class else None
    their_class = fhir.get("class", {}).get("code")
    yield from _scalar(
        file, "class", _V3_CLASS.get(patient_class or "", patient_class), their_class
    )
    period = fhir.get("period", {})
    yield from _scalar(
        file, "period.start", _utc(stay.admitted_at), _their_utc(period.get("start"))
    )
    yield from _scalar(file, "period.end", _utc(stay.discharged_at), _their_utc(period.get("end")))
    # Location: PV1-3.1 is the first Encounter.location in both converters; the other parts we
    # keep should each be a Location somewhere in their Bundle.
    locations = fhir.get("location", [])
    first = resources.get(locations[0]["location"]["reference"], {}) if locations else {}
    here = stay.location
    yield from _scalar(
        file, "location.point_of_care", here.point_of_care if here else None, first.get("name")
    )
    names = {r.get("name") for r in resources.values() if r["resourceType"] == "Location"}
    parts = {p for p in (here.ward, here.room, here.bed, here.facility) if p} if here else set()
    if parts - names:
        yield Difference(file, "location.parts", "extra", sorted(parts - names), None)
    disposition = fhir.get("hospitalization", {}).get("dischargeDisposition", {})
    their_code = (disposition.get("coding") or [{}])[0].get("code")
    # Both read PV1-36 here; UK Core binds dischargeDisposition to PV1-37 (our destination).
    our_code = stay.discharge_method.code if stay.discharge_method else None
    yield from _scalar(file, "discharge_disposition", our_code, their_code)


def _first(bundle: dict[str, Any], resource_type: str) -> dict[str, Any] | None:
    return next(
        (e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == resource_type),
        None,
    )


def _sets(file: str, field: str, ours: set[str], theirs: set[str]) -> Iterator[Difference]:
    if theirs - ours:
        yield Difference(file, field, "missing", sorted(ours), sorted(theirs - ours))
    if ours - theirs:
        yield Difference(file, field, "extra", sorted(ours - theirs), sorted(theirs))


def _scalar(file: str, field: str, ours: object, theirs: object) -> Iterator[Difference]:
    if ours != theirs:
        yield Difference(file, field, "differs", ours, theirs)


def _utc(instant: Instant | None) -> str | None:
    return instant.utc.isoformat() if instant else None


def _their_utc(text: str | None) -> str | None:
    """A FHIR dateTime as UTC when it has an offset; as written when it has none."""
    if text is None:
        return None
    value = datetime.fromisoformat(text)
    return value.astimezone(UTC).isoformat() if value.tzinfo else text


def accepted_key(difference: Difference) -> tuple[str, str, str] | None:
    """The first ACCEPTED entry that explains `difference`, if any."""
    for key in ACCEPTED:
        pattern, field, kind = key
        if (
            fnmatchcase(difference.file, pattern)
            and fnmatchcase(difference.field, field)
            and kind == difference.kind
        ):
            return key
    return None


def reason_for(difference: Difference) -> str | None:
    key = accepted_key(difference)
    return ACCEPTED[key] if key else None


@cache
def all_differences() -> tuple[Difference, ...]:
    found: list[Difference] = []
    for file, expected in pairs().items():
        event = outcome(file)[1]
        if event is not None:
            found.extend(differences(file, event, json.loads(expected.read_text("utf-8"))))
    return tuple(found)


# --- tests ----------------------------------------------------------------------------------


def test_the_outcome_table_lists_exactly_the_corpus_hl7v2_files() -> None:
    assert sorted(index()) == sorted(OUTCOMES)


@pytest.mark.parametrize("file", sorted(OUTCOMES))
def test_each_message_maps_or_is_rejected_with_its_reason(file: str) -> None:
    assert outcome(file)[0] == OUTCOMES[file]


def test_every_difference_from_the_other_converters_is_a_documented_choice() -> None:
    unexplained = [str(d) for d in all_differences() if reason_for(d) is None]
    assert not unexplained, "unexplained differences:\n" + "\n".join(unexplained)


def test_every_accepted_difference_still_occurs() -> None:
    used = {accepted_key(d) for d in all_differences()}
    assert [key for key in ACCEPTED if key not in used] == []


def test_every_accepted_difference_has_a_reason() -> None:
    assert set(ACCEPTED.values()) <= set(REASONS)
    assert set(REASONS) <= set(ACCEPTED.values())


def test_every_pair_with_an_expected_output_is_in_the_outcome_table() -> None:
    assert set(pairs()) <= set(OUTCOMES)


def report() -> str:
    """The outcome table and every difference with its reason, as text for people."""
    lines = ["Outcomes:"]
    for file in index():
        lines.append(f"  {file}: {outcome(file)[0]}")
    lines.append("Differences from the expected FHIR output:")
    for difference in all_differences():
        lines.append(f"  [{reason_for(difference) or 'UNEXPLAINED'}] {difference}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report())
