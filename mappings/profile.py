"""A feed's mapping profile: what differs between senders, as data rather than code.

An integration team adapts a feed by configuration, never by a code change:

- ``ward_component``: which PV1-3 component holds the ward (2, the ITK "room", by default;
  1 for feeds that follow base HL7 and put the nursing unit first);
- ``code_tables``: the sender's local codes for admission method, source of admission,
  discharge method, discharge destination and legal status, translated to the national lists
  (a packaged table's name, see `mappings.code_tables`, or the table itself inline);
- ``legal_status`` and ``risk_flags``: where a feed sends what ITK has no field for, as a
  segment field (``ZU5-2``, a local ``ZMH-3.1``) or an observation (``OBX-5`` of the OBX whose
  OBX-3 is a given code). Nothing configured means nothing is read: a legal status is never
  inferred from its absence.

`ProfileSettings` is a source's ``profile:`` in the engine's config, a pydantic model that
reports every mistake at its exact path and builds the pure runtime `FeedProfile` once;
`FeedProfile.from_mapping` does the same from a plain dict that names the feed too.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Annotated, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BeforeValidator,
    PlainValidator,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from mappings.code_tables import CODED_ELEMENTS, CodedElement, load_code_table, table_element
from mappings.model import CareSetting, LegalStatusContext
from mappings.settings import Strict, problem_at, problem_lines

__all__ = [
    "DEFAULT_TIMEZONE",
    "CodeTablesSettings",
    "FeedProfile",
    "FeedSettings",
    "FieldRef",
    "LegalStatusSettings",
    "LocalField",
    "ProfileError",
    "ProfileSettings",
    "RiskFlagSettings",
    "TimeZone",
    "event_id",
]

DEFAULT_TIMEZONE = "Europe/London"
_FIELD_REF = re.compile(r"([A-Z][A-Z0-9]{2})-([1-9]\d{0,2})(?:\.([1-9]\d?))?")
_NO_TABLES: Mapping[str, Mapping[str, str]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class FieldRef:
    """One field (and component) of a segment, written the HL7 way: ``ZU5-2`` or ``ZMH-3.1``."""

    segment: str
    field: int
    component: int = 1

    @classmethod
    def parse(cls, text: str) -> FieldRef:
        """Read ``SEG-n`` or ``SEG-n.c``; raises `ValueError` for anything else."""
        match = _FIELD_REF.fullmatch(text.strip())
        if match is None:
            raise ValueError(f"{text!r} is not a field such as ZU5-2 or ZMH-3.1")
        segment, number, component = match.groups()
        return cls(segment, int(number), int(component or 1))

    def __str__(self) -> str:
        suffix = f".{self.component}" if self.component != 1 else ""
        return f"{self.segment}-{self.field}{suffix}"


@dataclass(frozen=True, slots=True)
class LocalField:
    """Where a feed sends a value that has no standard field (legal status, risk flags).

    `value` is a segment field; for an OBX, `observation` is the OBX-3 identifier to match and
    the field numbers count within that OBX. `context` says which legal status it is (None:
    the event's own, admission on an admission, discharge on a discharge, else current);
    `start` and `end` are optional fields holding the dates it applies from and to.
    """

    value: FieldRef
    observation: str | None = None
    context: LegalStatusContext | None = None
    start: FieldRef | None = None
    end: FieldRef | None = None

    @property
    def location(self) -> str:
        """How warnings name the source: ``ZU5-2`` or ``OBX[LEGAL]-5``."""
        if self.observation is None:
            return str(self.value)
        return f"OBX[{self.observation}]-{str(self.value).split('-', 1)[1]}"


@dataclass(frozen=True, slots=True)
class FeedProfile:
    """How to read one source's messages.

    The default profile follows the NHS ITK HL7v2 conventions (v2.4, ward in PV1-3.2 "room",
    ODS site in PV1-3.4), reads offset-less timestamps as Europe/London wall-clock time, has no
    code tables and reads no local fields.
    """

    feed: str
    care_setting: CareSetting = CareSetting.UNKNOWN
    timezone: str = DEFAULT_TIMEZONE
    ward_component: Literal[1, 2] = 2
    code_tables: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: _NO_TABLES)
    """Coded element (``discharge_destination``...) → {local code: national code}."""
    legal_status: tuple[LocalField, ...] = ()
    risk_flags: tuple[LocalField, ...] = ()
    pid_2: Literal["nhs_number", "local"] = "nhs_number"
    """What a PID-2 without assigning authority or type is: a valid NHS number there is read as
    the NHS number (v2.3 senders put it there), with a warning; ``local``: a local id."""
    nhs_numbers: Literal["production", "test"] = "production"
    """``production``: a valid NHS number in the 999 test range or outside the issued ranges is
    not a real patient's (never sent on as verified; the clinician is told). ``test``: a test
    environment's feed, whose patients have such numbers. Placeholders are never real."""

    @classmethod
    def from_mapping(cls, data: object) -> FeedProfile:
        """A profile from plain data (YAML config, a test's dict): validated by `FeedSettings`;
        raises `ProfileError` listing every problem at its path.

        ``feed`` is required; every other key is optional::

            feed: mh-trust
            care_setting: mental_health        # mental_health | acute | community | unknown
            timezone: Europe/London
            ward_component: 1                  # 1 or 2
            code_tables:
              discharge_destination: {"HOME": "19", "PRISON": "38"}   # inline
              legal_status: zu5-legal-status                          # packaged
            legal_status:
              - field: ZU5-2
                context: admission   # admission | discharge | current (default: the event's)
                start: ZU5-4
            risk_flags:
              - field: OBX-5
                observation: RISK              # the OBX-3 identifier
            nhs_numbers: production            # or test: 999 and unissued numbers are real
            pid_2: nhs_number                  # or local: a bare PID-2 is the feed's own id
        """
        try:
            return FeedSettings.model_validate(data).feed_profile()
        except ValidationError as exc:
            raise ProfileError(problem_lines(exc)) from None


# --- the profile as configuration: pydantic models, every problem at its exact path ---------


class ProfileError(ValueError):
    """A profile's data is invalid; `problems` holds one ``path: reason`` line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _field_ref(value: object) -> FieldRef:
    if isinstance(value, FieldRef):
        return value
    if not isinstance(value, str):
        raise ValueError("must be a field such as ZU5-2 or ZMH-3.1")
    return FieldRef.parse(value)


def _known_zone(zone: str) -> str:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{zone!r} is not an IANA time zone such as Europe/London") from None
    return zone


def _ward_component(value: object) -> int:
    if type(value) is int and value in (1, 2):
        return value
    raise ValueError("must be 1 (PV1-3.1) or 2 (PV1-3.2, the ITK default)")


FieldRefText = Annotated[FieldRef, PlainValidator(_field_ref)]
"""A field written the HL7 way in the config (``ZU5-2``, ``ZMH-3.1``)."""
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
TimeZone = Annotated[str, AfterValidator(_known_zone)]
"""An IANA time zone name, such as Europe/London."""


class RiskFlagSettings(Strict):
    """Where a feed sends a risk flag: a segment field (``ZMH-3.1``), or for an OBX field the
    OBX whose OBX-3 is `observation`."""

    field: FieldRefText
    observation: Text | None = None
    """The OBX-3 identifier of the OBX to read (only, and always, for an OBX field)."""

    @model_validator(mode="after")
    def _observation_only_for_obx(self) -> Self:
        if self.field.segment == "OBX" and self.observation is None:
            raise problem_at(
                type(self).__name__,
                ("observation",),
                "required for an OBX field: the OBX-3 identifier to match",
            )
        if self.field.segment != "OBX" and self.observation is not None:
            raise problem_at(type(self).__name__, ("observation",), "only for an OBX field")
        return self

    def local_field(self) -> LocalField:
        return LocalField(self.field, self.observation)


class LegalStatusSettings(RiskFlagSettings):
    """Where a feed sends a legal status, which one it is, and the fields of its dates."""

    context: LegalStatusContext | None = None
    """admission, discharge or current; omitted: the event's own."""
    start: FieldRefText | None = None
    end: FieldRefText | None = None

    @model_validator(mode="after")
    def _dates_in_the_same_segment(self) -> Self:
        for name, ref in (("start", self.start), ("end", self.end)):
            if ref is not None and ref.segment != self.field.segment:
                raise problem_at(
                    type(self).__name__,
                    (name,),
                    f"must be a field of {self.field.segment}, like the value",
                )
        return self

    def local_field(self) -> LocalField:
        return LocalField(self.field, self.observation, self.context, self.start, self.end)


def _as_mapping(value: object) -> object:
    """``ZU5-2`` is short for ``{field: ZU5-2}``."""
    return {"field": value} if isinstance(value, str) else value


def _as_list(value: object) -> object:
    """One field (text or mapping) is short for a list of one."""
    return [value] if isinstance(value, str | Mapping) else value


def _element(info: ValidationInfo) -> CodedElement:
    return CODED_ELEMENTS[str(info.field_name)]


def _packaged(value: object, info: ValidationInfo) -> object:
    """A packaged table's name stands for its codes; it must be a table of this element."""
    if not isinstance(value, str):
        return value
    element = _element(info)
    codes = load_code_table(value)
    if (packaged_for := table_element(value)) != element.name:
        raise ValueError(f"table {value!r} is for {packaged_for}, not {element.name}")
    return codes


def _local_code(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("local codes must be quoted strings")
    return value.strip()


def _national_code(value: object, info: ValidationInfo) -> str:
    if not isinstance(value, str):
        raise ValueError("the national code must be a quoted string")
    element = _element(info)
    if value not in element.known:
        raise ValueError(f"{value!r} is not in the national {element.what} list")
    return value


CodeTable = Annotated[
    dict[
        Annotated[str, PlainValidator(_local_code)],
        Annotated[str, PlainValidator(_national_code)],
    ],
    BeforeValidator(_packaged),
]
"""A packaged table's name, or the table inline: {local code: national code}, both quoted (YAML
reads an unquoted 01 as the number 1)."""


class CodeTablesSettings(Strict):
    """The sender's local codes for each coded element, translated to the national list."""

    admission_method: CodeTable | None = None
    admission_source: CodeTable | None = None
    discharge_method: CodeTable | None = None
    discharge_destination: CodeTable | None = None
    legal_status: CodeTable | None = None

    def tables(self) -> Mapping[str, Mapping[str, str]]:
        tables = {name: MappingProxyType(dict(codes))
                  for name, codes in self if codes is not None}  # fmt: skip
        return MappingProxyType(tables) if tables else _NO_TABLES


class ProfileSettings(Strict):
    """What a feed does differently from the NHS ITK conventions: a source's ``profile:``."""

    ward_component: Annotated[Literal[1, 2], PlainValidator(_ward_component)] = 2
    code_tables: CodeTablesSettings = CodeTablesSettings()
    legal_status: Annotated[
        tuple[Annotated[LegalStatusSettings, BeforeValidator(_as_mapping)], ...],
        BeforeValidator(_as_list),
    ] = ()
    risk_flags: Annotated[
        tuple[Annotated[RiskFlagSettings, BeforeValidator(_as_mapping)], ...],
        BeforeValidator(_as_list),
    ] = ()
    pid_2: Literal["nhs_number", "local"] = "nhs_number"
    """``local`` for a feed whose PID-2 holds its own id even when it looks like a valid NHS
    number; by default a valid number alone in PID-2 is the NHS number (v2.3 style)."""
    nhs_numbers: Literal["production", "test"] = "production"
    """``test`` only for a test environment's feed: its 999 and unissued NHS numbers are taken
    as real patients' (sent on as NHS numbers). In production they are flagged as not real."""

    def build(
        self,
        feed: str,
        care_setting: CareSetting = CareSetting.UNKNOWN,
        timezone: str = DEFAULT_TIMEZONE,
    ) -> FeedProfile:
        """The runtime profile of the feed `feed` (the source's name)."""
        return FeedProfile(
            feed=feed,
            care_setting=care_setting,
            timezone=timezone,
            ward_component=self.ward_component,
            code_tables=self.code_tables.tables(),
            legal_status=tuple(item.local_field() for item in self.legal_status),
            risk_flags=tuple(item.local_field() for item in self.risk_flags),
            nhs_numbers=self.nhs_numbers,
            pid_2=self.pid_2,
        )


class FeedSettings(ProfileSettings):
    """A whole profile as plain data: the feed, its care setting and time zone, and its
    `ProfileSettings` (in the engine's config the first three are the source's own)."""

    feed: Text
    care_setting: CareSetting = CareSetting.UNKNOWN
    timezone: TimeZone = DEFAULT_TIMEZONE

    def feed_profile(self) -> FeedProfile:
        return self.build(self.feed, self.care_setting, self.timezone)


def event_id(feed: str, message_id: str) -> str:
    """The stable id of the event a feed's message becomes: a replay maps to the same id."""
    digest = hashlib.sha256(f"{feed}\x1f{message_id}".encode()).hexdigest()
    return f"ev-{digest[:32]}"
