"""The stay of a FHIR message: the Encounter as a `Stay`, its locations, coded values,
legal status and responsible clinician, and where the patient moves from and to.
"""

from __future__ import annotations

from typing import Any, Final

from mappings.code_tables import CODED_ELEMENTS, CodedElement
from mappings.codes import (
    HL7_PATIENT_CLASS,
    LEGAL_STATUS_ENGLAND,
    PATIENT_CLASSES,
    TREATMENT_FUNCTION,
    local_system,
)
from mappings.fhir.clinician import responsible_clinician
from mappings.fhir.event import AFTER_CANCEL, MOVES, OPEN_STAY, STAY_STATUS
from mappings.fhir.location import read_place
from mappings.fhir.message import Message, Resource
from mappings.fhir.read import SHOWN_CODE
from mappings.fhir.source import EncounterHistory
from mappings.fhir.values import (
    JsonObject,
    as_object,
    as_objects,
    as_text,
    codings_of,
    extensions_of,
    fhir_instant,
    first_code,
    logical_ods,
    ods_of,
)
from mappings.fhir.vocabulary import (
    ACT_CODE_SYSTEM,
    ACT_TO_CLASS,
    ADMISSION_METHOD_URL,
    DISCHARGE_METHOD_URL,
    IDENTIFIER_TYPE_SYSTEM,
    LEAVE_EXPECTED_RETURN_URL,
    LEGAL_STATUS_PERIOD_URL,
    LEGAL_STATUS_URL,
    LEGAL_STATUS_WALES,
    NULL_FLAVOR_SYSTEM,
)
from mappings.hl7v2.types import Reading
from mappings.model import (
    ODS_ORGANISATION_SYSTEM,
    CareSetting,
    Coding,
    EventKind,
    Instant,
    LegalStatus,
    LegalStatusContext,
    Location,
    Stay,
)
from mappings.profile import FeedProfile

# --- the stay -----------------------------------------------------------------------------------

_MENTAL_HEALTH_FUNCTIONS: Final = range(700, 730)
_LEGAL_CONTEXT: Final = {
    EventKind.ADMISSION: LegalStatusContext.ADMISSION,
    EventKind.DISCHARGE: LegalStatusContext.DISCHARGE,
}


class StayReader:
    def __init__(
        self,
        message: Message,
        encounter: Resource,
        history: EncounterHistory,
        kind: EventKind,
        profile: FeedProfile,
        reading: Reading,
    ) -> None:
        self.message = message
        self.encounter = encounter
        self.data = encounter.data
        self.path = encounter.path
        self.kind = kind
        self.status = str(encounter.data["status"])  # checked by _encounter_status
        self.profile = profile
        self.reading = reading
        self.history = history
        self.places = [read_place(message, encounter, entry) for entry in history.locations]

    def stay(self) -> Stay:
        data, path = self.data, self.path
        period = as_object(data.get("period")) or {}
        reads_discharge = self.kind is not EventKind.CANCEL_DISCHARGE
        admitted_at = fhir_instant(period.get("start"), f"{path}.period.start", self.reading)
        discharged_at = (
            fhir_instant(period.get("end"), f"{path}.period.end", self.reading)
            if reads_discharge
            else None
        )
        if self.kind is EventKind.DISCHARGE and discharged_at is None:
            self.reading.warn(f"{path}.period.end", "discharge date/time missing on a discharge")
        elif self.kind in OPEN_STAY and discharged_at is not None:
            self.reading.warn(
                f"{path}.period.end",
                f"discharge date/time on a {self.kind.value!r} event, which does not end the stay",
            )
        hospitalization = as_object(data.get("hospitalization")) or {}
        hpath = f"{path}.hospitalization"
        specialty = self._specialty()
        location = self.places[self.history.present] if self.history.present is not None else None
        spell, episode = self._spell()
        return Stay(
            id=spell,
            episode_id=episode,
            care_setting=_care_setting(self.profile.care_setting, specialty),
            patient_class=self._patient_class(),
            status=AFTER_CANCEL.get(self.kind)
            if self.status == "entered-in-error"
            else STAY_STATUS[self.status],
            provider_ods=self._provider(),
            site_ods=location.facility if location else None,
            location=location,
            specialty=specialty,
            admitted_at=admitted_at,
            discharged_at=discharged_at,
            admission_method=self._extension_code(
                hospitalization, ADMISSION_METHOD_URL, hpath, "admission_method"
            ),
            admission_source=self._coded(
                hospitalization.get("admitSource"), f"{hpath}.admitSource", "admission_source"
            ),
            legal_status=self._legal_status(),
            responsible_clinician=responsible_clinician(self.message, self.encounter),
            discharge_method=(
                self._extension_code(data, DISCHARGE_METHOD_URL, path, "discharge_method")
                if reads_discharge
                else None
            ),
            leave_expected_return=self._leave_return(),
            discharge_destination=(
                self._coded(
                    hospitalization.get("dischargeDisposition"),
                    f"{hpath}.dischargeDisposition",
                    "discharge_destination",
                )
                if reads_discharge
                else None
            ),
        )

    def _leave_return(self) -> Instant | None:
        for extension in extensions_of(self.data, LEAVE_EXPECTED_RETURN_URL):
            return fhir_instant(
                extension.get("valueDateTime"), f"{self.path}.extension", self.reading
            )
        return None

    def movement(self) -> tuple[Location | None, Location | None]:
        roles = {"present": self.history.present, "previous": self.history.previous}
        moves_from, moves_to = MOVES.get(self.kind, (None, None))
        if self.kind is EventKind.TRANSFER and self.history.previous is None:
            self.reading.warn(
                f"{self.path}.location", "no completed earlier location on a transfer"
            )

        def place(role: str | None) -> Location | None:
            index = roles.get(role) if role else None
            return self.places[index] if index is not None else None

        return place(moves_from), place(moves_to)

    def _spell(self) -> tuple[str | None, str | None]:
        """The spell (official or visit-number identifier, else the first) and the episode
        (the secondary identifier)."""
        spell = episode = fallback = None
        for item in as_objects(self.data.get("identifier")):
            value = as_text(item.get("value"))
            if value is None:
                continue
            if item.get("use") == "secondary":
                episode = episode or value
            elif item.get("use") == "official" or (
                first_code(item.get("type"), IDENTIFIER_TYPE_SYSTEM) == "VN"
            ):
                spell = spell or value
            else:
                fallback = fallback or value
        return spell or fallback, episode

    def _patient_class(self) -> Coding | None:
        coding = as_object(self.data.get("class")) or {}
        system, code = as_text(coding.get("system")), as_text(coding.get("code"))
        if code is None or system == NULL_FLAVOR_SYSTEM:
            return None
        if system == ACT_CODE_SYSTEM and code in ACT_TO_CLASS:
            code = ACT_TO_CLASS[code]
            return Coding(system=HL7_PATIENT_CLASS, code=code, display=PATIENT_CLASSES[code])
        if system == HL7_PATIENT_CLASS and code in PATIENT_CLASSES:
            return Coding(system=HL7_PATIENT_CLASS, code=code, display=PATIENT_CLASSES[code])
        return Coding(
            system=system or local_system(self.reading.feed, "Encounter.class"),
            code=code,
            display=as_text(coding.get("display")),
        )

    def _specialty(self) -> Coding | None:
        for concept in as_objects(self.data.get("type")):
            for coding in codings_of(concept):
                code = as_text(coding.get("code"))
                if coding.get("system") == TREATMENT_FUNCTION and code:
                    return Coding(
                        system=TREATMENT_FUNCTION, code=code, display=as_text(coding.get("display"))
                    )
        return None

    def _provider(self) -> str | None:
        reference = self.data.get("serviceProvider")
        org = self.message.resolve(reference, self.encounter, "Organization")
        return (ods_of(org.data, ODS_ORGANISATION_SYSTEM) if org else None) or logical_ods(
            reference
        )

    def _extension_code(
        self, holder: JsonObject, url: str, path: str, element: str
    ) -> Coding | None:
        for extension in extensions_of(holder, url):
            return self._coded(extension.get("valueCodeableConcept"), f"{path}.extension", element)
        return None

    def _coded(
        self, concept: Any, path: str, element_name: str, *, quote: bool = True
    ) -> Coding | None:
        """A code of a national list when any coding (or the feed's table) gives one; else the
        sender's first coding, under its own system, with a warning."""
        element: CodedElement = CODED_ELEMENTS[element_name]
        codings = [c for c in codings_of(concept) if as_text(c.get("code"))]
        if not codings:
            return None
        for coding in codings:
            code = str(coding["code"]).strip()
            if coding.get("system") == element.system and code in element.known:
                return Coding(system=element.system, code=code, display=element.known[code])
        table = self.profile.code_tables.get(element.name)
        if table:
            for coding in codings:
                national = table.get(str(coding["code"]).strip())
                if national is not None and national in element.known:
                    return Coding(
                        system=element.system, code=national, display=element.known[national]
                    )
        first = codings[0]
        code = str(first["code"]).strip()
        system = as_text(first.get("system"))
        shown = f" {code!r}" if quote and SHOWN_CODE.fullmatch(code) and len(code) <= 12 else ""
        if system is None or system == element.system:
            # A national system with a code it does not have is mislabelled: keep it as local.
            system = local_system(self.reading.feed, path)
        self.reading.warn(
            path, f"{element.what}{shown} is not in the national list; kept under its own system"
        )
        return Coding(system=system, code=code, display=as_text(first.get("display")))

    def _legal_status(self) -> tuple[LegalStatus, ...]:
        statuses: list[LegalStatus] = []
        default = _LEGAL_CONTEXT.get(self.kind, LegalStatusContext.CURRENT)
        for index, extension in enumerate(as_objects(self.data.get("extension"))):
            if extension.get("url") != LEGAL_STATUS_URL:
                continue
            path = f"{self.path}.extension[{index}]"
            parts = {p.get("url"): p for p in as_objects(extension.get("extension"))}
            classification = parts.get("legalStatusClassification") or {}
            code = self._legal_code(classification.get("valueCodeableConcept"), path)
            if code is None:
                self.reading.warn(path, "legal status without a classification; ignored")
                continue
            context_code = first_code(
                (parts.get("legalStatusContext") or {}).get("valueCodeableConcept")
            )
            try:
                context = LegalStatusContext(context_code) if context_code else default
            except ValueError:
                self.reading.warn(path, "legal status context not recognised; the event's is used")
                context = default
            period = as_object((parts.get(LEGAL_STATUS_PERIOD_URL) or {}).get("valuePeriod")) or {}
            statuses.append(
                LegalStatus(
                    code=code,
                    context=context,
                    start=fhir_instant(period.get("start"), f"{path}.period.start", self.reading),
                    end=fhir_instant(period.get("end"), f"{path}.period.end", self.reading),
                )
            )
        return tuple(statuses)

    def _legal_code(self, concept: Any, path: str) -> Coding | None:
        """England's list (or the feed's table into it); Wales's list keeps its own system."""
        codings = [c for c in codings_of(concept) if as_text(c.get("code"))]
        wales = [c for c in codings if c.get("system") == LEGAL_STATUS_WALES]
        if wales and not any(c.get("system") == LEGAL_STATUS_ENGLAND for c in codings):
            code = str(wales[0]["code"]).strip()
            return Coding(
                system=LEGAL_STATUS_WALES, code=code, display=as_text(wales[0].get("display"))
            )
        return self._coded(concept, path, "legal_status", quote=False)


def _care_setting(configured: CareSetting, specialty: Coding | None) -> CareSetting:
    """The feed's care setting; a feed that does not say is mental health for a 7xx function."""
    if configured is not CareSetting.UNKNOWN or specialty is None:
        return configured
    code = specialty.code
    if code.isdigit() and int(code) in _MENTAL_HEALTH_FUNCTIONS:
        return CareSetting.MENTAL_HEALTH
    return configured
