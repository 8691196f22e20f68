"""The common patient-care model every feed is mapped into.

One `CareEvent` says what happened (admission, transfer, discharge...), to whom (`Patient`),
in which spell (`Stay`), when (occurred / recorded / received) and where the news came from
(`MessageSource`). It follows section 6 of the UK ADT and discharge domain brief:

- instants are kept in UTC *beside* the text they were read from and its precision, so a
  date-only value is never turned into a false midnight;
- codes are always ``{system, code, display}``: a legal status without its code system is
  meaningless (England and Wales lists differ);
- the NHS number is only ever the NHS number when its modulus-11 check digit is right; an
  invalid one is kept as an unverified local identifier (see `mappings.nhs_number`).

The models are frozen pydantic models: mapping functions build them, nothing mutates them.
`docs/care-event.schema.json` is generated from `CareEvent` (see `carebridge schema`).
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
ODS_ORGANISATION_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
ODS_SITE_SYSTEM = "https://fhir.nhs.uk/Id/ods-site-code"
SCHEMA_VERSION: Literal["1"] = "1"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Coding(_Frozen):
    """A coded value: always the system with the code, so codes from different lists never mix."""

    system: str
    code: str
    display: str | None = None


class Precision(StrEnum):
    """How much of an instant the source actually said."""

    YEAR = "year"
    MONTH = "month"
    DAY = "day"
    HOUR = "hour"
    MINUTE = "minute"
    SECOND = "second"
    FRACTION = "fraction"


class Instant(_Frozen):
    """A point in time as the source wrote it, and the same point in UTC.

    `utc` is the start of the period the text names (a date-only value is its local midnight).
    `zone_assumed` is true when the text carried no offset and the source's zone was applied.
    """

    utc: datetime
    original: str
    precision: Precision
    zone_assumed: bool = False


class IdentifierKind(StrEnum):
    NHS_NUMBER = "nhs_number"
    """A 10-digit NHS number whose check digit is valid."""
    LOCAL = "local"
    """A hospital number (MRN) or any other identifier of one organisation."""
    UNVERIFIED_NHS_NUMBER = "unverified_nhs_number"
    """Sent as an NHS number but failed the modulus-11 check: never used as the NHS number."""
    OTHER = "other"


class NhsNumberStatus(StrEnum):
    """NHS Number Status Indicator (NHS DD / PID-32 NSTSnn / UK Core verification status)."""

    VERIFIED = "01"
    NOT_TRACED = "02"
    TRACE_REQUIRED = "03"
    NO_MATCH = "04"
    CONFLICT = "05"
    TRACE_IN_PROGRESS = "06"
    NOT_PRESENT_NO_TRACE = "07"
    TRACE_POSTPONED = "08"


class Identifier(_Frozen):
    kind: IdentifierKind
    value: str
    system: str | None = None
    """A URI (NHS number system) or the sender's assigning authority (PID-3 CX.4)."""
    type_code: str | None = None
    """Identifier type (CX.5: NH, MR, ...)."""
    assigner_ods: str | None = None
    verification: NhsNumberStatus | None = None
    warnings: tuple[str, ...] = ()
    """Why this identifier is suspect: failed check digit, placeholder, out of issued range."""
    not_real: str | None = None
    """Why this valid NHS number cannot be a real patient's (placeholder, test range, not
    issued; `mappings.nhs_number.not_real_reason`): it is never sent on as a verified NHS
    number, and the clinician is told."""


class NameUse(StrEnum):
    OFFICIAL = "official"
    USUAL = "usual"
    ALIAS = "alias"
    OLD = "old"
    MAIDEN = "maiden"
    UNKNOWN = "unknown"


class PersonName(_Frozen):
    use: NameUse = NameUse.OFFICIAL
    family: str | None = None
    given: tuple[str, ...] = ()
    prefix: str | None = None
    suffix: str | None = None


class Gender(StrEnum):
    """FHIR administrative gender; PID-8 NHS codes 0/1/2/9 and M/F/U/O map onto it."""

    MALE = "male"
    FEMALE = "female"
    OTHER = "other"
    UNKNOWN = "unknown"


class AddressUse(StrEnum):
    HOME = "home"
    TEMPORARY = "temp"
    POSTAL = "postal"
    WORK = "work"
    OLD = "old"
    UNKNOWN = "unknown"


class Address(_Frozen):
    use: AddressUse = AddressUse.HOME
    lines: tuple[str, ...] = ()
    city: str | None = None
    district: str | None = None
    postcode: str | None = None
    country: str | None = None


class Patient(_Frozen):
    identifiers: tuple[Identifier, ...] = ()
    names: tuple[PersonName, ...] = ()
    birth_date: date | None = None
    birth_date_original: str | None = None
    gender: Gender | None = None
    gender_original: str | None = None
    addresses: tuple[Address, ...] = ()
    ethnic_category: Coding | None = None
    gp_practice_ods: str | None = None
    gp_code: str | None = None
    deceased_at: Instant | None = None
    identity_unknown: bool = False
    nhs_number_status: NhsNumberStatus | None = None
    """PID-32 as sent, kept even when the message carries no NHS number (NSTS03, 04 and 07 say
    why there is none)."""
    location_hidden: bool = False
    """ZU8 location hiding: address, telephone, next of kin and GP must not go downstream."""

    @property
    def nhs_number(self) -> str | None:
        """The valid NHS number, if the patient has exactly one; otherwise None."""
        numbers = {i.value for i in self.identifiers if i.kind is IdentifierKind.NHS_NUMBER}
        return next(iter(numbers)) if len(numbers) == 1 else None

    @property
    def nhs_number_not_real(self) -> str | None:
        """Why the patient's NHS number cannot be a real patient's, or None."""
        number = self.nhs_number
        return next(
            (i.not_real for i in self.identifiers if i.value == number and i.not_real), None
        )

    def local_identifier(self) -> Identifier | None:
        """The first local (hospital) identifier, used for the patient key without NHS number."""
        return next((i for i in self.identifiers if i.kind is IdentifierKind.LOCAL), None)


class CareSetting(StrEnum):
    MENTAL_HEALTH = "mental_health"
    ACUTE = "acute"
    COMMUNITY = "community"
    UNKNOWN = "unknown"


class StayStatus(StrEnum):
    PLANNED = "planned"
    ACTIVE = "active"
    ON_LEAVE = "on_leave"
    FINISHED = "finished"
    CANCELLED = "cancelled"


class Location(_Frozen):
    """A bed-level location. `facility` is the ODS site code where the feed sends one."""

    ward: str | None = None
    room: str | None = None
    bed: str | None = None
    facility: str | None = None
    point_of_care: str | None = None
    description: str | None = None


class Clinician(_Frozen):
    code: str | None = None
    """National code (GMC 'C' + 7 digits for a consultant) or the feed's own."""
    family: str | None = None
    given: str | None = None
    prefix: str | None = None


class LegalStatusContext(StrEnum):
    ADMISSION = "admission"
    DISCHARGE = "discharge"
    CURRENT = "current"


class LegalStatus(_Frozen):
    """A Mental Health Act legal status classification, always with its code system."""

    code: Coding
    context: LegalStatusContext = LegalStatusContext.CURRENT
    start: Instant | None = None
    end: Instant | None = None


class Stay(_Frozen):
    """The hospital spell (or community episode) the event belongs to."""

    id: str | None = None
    """Spell / visit number (PV1-19)."""
    episode_id: str | None = None
    """Consultant episode / alternate visit id (PV1-50)."""
    care_setting: CareSetting = CareSetting.UNKNOWN
    patient_class: Coding | None = None
    status: StayStatus | None = None
    provider_ods: str | None = None
    site_ods: str | None = None
    location: Location | None = None
    specialty: Coding | None = None
    """Treatment function (PV1-10), e.g. 710 adult mental illness."""
    admitted_at: Instant | None = None
    discharged_at: Instant | None = None
    admission_method: Coding | None = None
    admission_source: Coding | None = None
    legal_status: tuple[LegalStatus, ...] = ()
    responsible_clinician: Clinician | None = None
    discharge_method: Coding | None = None
    discharge_destination: Coding | None = None
    leave_expected_return: Instant | None = None
    """When a patient on leave of absence is expected back (PV2-47 on an A21)."""
    risk_flags: tuple[Coding, ...] = ()
    """Risk flags (e.g. high risk) from where the feed's profile says it sends them."""


class EventKind(StrEnum):
    ADMISSION = "admission"
    TRANSFER = "transfer"
    DISCHARGE = "discharge"
    REGISTRATION = "registration"
    PRE_ADMISSION = "pre_admission"
    LEAVE_START = "leave_start"
    LEAVE_END = "leave_end"
    UPDATE = "update"
    PERSON_UPDATE = "person_update"
    CANCEL_ADMISSION = "cancel_admission"
    CANCEL_TRANSFER = "cancel_transfer"
    CANCEL_DISCHARGE = "cancel_discharge"
    CANCEL_PRE_ADMISSION = "cancel_pre_admission"
    CANCEL_LEAVE_START = "cancel_leave_start"
    CANCEL_LEAVE_END = "cancel_leave_end"
    MERGE = "merge"


CANCEL_OF: dict[EventKind, EventKind] = {
    EventKind.ADMISSION: EventKind.CANCEL_ADMISSION,
    EventKind.REGISTRATION: EventKind.CANCEL_ADMISSION,  # A11 also cancels an A04
    EventKind.TRANSFER: EventKind.CANCEL_TRANSFER,
    EventKind.DISCHARGE: EventKind.CANCEL_DISCHARGE,
    EventKind.PRE_ADMISSION: EventKind.CANCEL_PRE_ADMISSION,
    EventKind.LEAVE_START: EventKind.CANCEL_LEAVE_START,
    EventKind.LEAVE_END: EventKind.CANCEL_LEAVE_END,
}
"""The kind of event that cancels each cancellable kind."""

CANCELS: dict[EventKind, EventKind] = {
    EventKind.CANCEL_ADMISSION: EventKind.ADMISSION,
    EventKind.CANCEL_TRANSFER: EventKind.TRANSFER,
    EventKind.CANCEL_DISCHARGE: EventKind.DISCHARGE,
    EventKind.CANCEL_PRE_ADMISSION: EventKind.PRE_ADMISSION,
    EventKind.CANCEL_LEAVE_START: EventKind.LEAVE_START,
    EventKind.CANCEL_LEAVE_END: EventKind.LEAVE_END,
}
"""The kind of event each cancel kind cancels."""


class MessageFormat(StrEnum):
    HL7V2 = "hl7v2"
    FHIR = "fhir"


class MessageSource(_Frozen):
    """Where the event came from: the configured feed and the sender's own message header."""

    feed: str
    """The configured source name (e.g. ``mh-trust``)."""
    format: MessageFormat
    message_id: str
    """The sender's unique message id: MSH-10, or the FHIR Bundle identifier / MessageHeader id."""
    system: str | None = None
    facility_ods: str | None = None
    message_type: str | None = None
    version: str | None = None
    profile: str | None = None
    sent_at: Instant | None = None
    sequence: str | None = None


class Merge(_Frozen):
    survivor: tuple[Identifier, ...]
    retired: tuple[Identifier, ...]


class TransitionKind(StrEnum):
    """A transition of care the recipient must see (issue 13, domain brief 7.13, 7.14, 9)."""

    TO_ADULT_SERVICES = "to_adult_services"
    """A young person moving from children's to adults' services (NICE NG43)."""
    OUT_OF_AREA = "out_of_area"
    """The patient's GP practice or home is outside the discharging provider's area."""


class Transition(_Frozen):
    kind: TransitionKind
    reason: str
    """Why, in words a clinician reads (never an address)."""


class CareEvent(_Frozen):
    """One thing that happened to one patient, in the engine's own words."""

    schema_version: Literal["1"] = SCHEMA_VERSION
    event_id: str
    """Stable id derived from the feed and the sender's message id: a replay is the same event."""
    kind: EventKind
    trigger: str | None = None
    """The sender's own event code (e.g. ``A03``), for the message log."""
    occurred_at: Instant | None = None
    recorded_at: Instant | None = None
    received_at: datetime | None = None
    """When the engine received the message (UTC), set by the engine, never by a mapping."""
    source: MessageSource
    patient: Patient
    stay: Stay | None = None
    location_from: Location | None = None
    location_to: Location | None = None
    cancels: EventKind | None = None
    """For a cancel-* event, the kind of event it cancels."""
    corrects_event_id: str | None = None
    """For a cancel: the `event_id` of the event it cancels, found by the engine at intake; None
    when that event was never received. Set by the engine, never by a mapping."""
    merge: Merge | None = None
    cleared: tuple[str, ...] = ()
    """Model paths the sender explicitly deleted with HL7's ``""`` (e.g. ``stay.discharge_method``).

    ITK: an empty field means "unchanged", ``""`` means "delete the stored value". Both map to
    an absent value; only a deletion is listed here, so an update (A08, A31) can tell them apart.
    """
    warnings: tuple[str, ...] = Field(default=())
    """Things an operator should know that did not stop the mapping (e.g. an invalid NHS number)."""
    transitions: tuple[Transition, ...] = ()
    """Transitions of care this discharge carries (to adult services, out of area). Set by the
    engine from its `transitions:` config (`mappings.clinical.transitions`), never by a
    mapping."""
