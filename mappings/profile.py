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

`FeedProfile.from_mapping` builds a profile from plain data (the engine's YAML config) and
reports every problem as ``path: reason``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mappings.code_tables import CODED_ELEMENTS, check_codes, load_code_table, table_element
from mappings.model import CareSetting, LegalStatusContext

__all__ = ["DEFAULT_TIMEZONE", "FeedProfile", "FieldRef", "LocalField", "ProfileError", "event_id"]

DEFAULT_TIMEZONE = "Europe/London"
_FIELD_REF = re.compile(r"([A-Z][A-Z0-9]{2})-([1-9]\d{0,2})(?:\.([1-9]\d?))?")
_NO_TABLES: Mapping[str, Mapping[str, str]] = MappingProxyType({})


class ProfileError(ValueError):
    """A profile's data is invalid; `problems` holds one ``path: reason`` line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


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

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> FeedProfile:
        """A profile from plain data (YAML config); raises `ProfileError` listing every problem.

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
        """
        return _ProfileReader(data).profile()


class _ProfileReader:
    """Reads a profile mapping, collecting every problem before raising."""

    _KEYS = frozenset(
        {
            "feed",
            "care_setting",
            "timezone",
            "ward_component",
            "code_tables",
            "legal_status",
            "risk_flags",
        }
    )

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data
        self.problems: list[str] = []

    def problem(self, path: str, reason: str) -> None:
        self.problems.append(f"{path}: {reason}")

    def profile(self) -> FeedProfile:
        if not isinstance(self.data, Mapping):
            raise ProfileError(["profile: must be a mapping"])
        for key in sorted(set(map(str, self.data)) - self._KEYS):
            self.problem(key, f"unknown setting; expected one of {', '.join(sorted(self._KEYS))}")
        feed = self.data.get("feed")
        if not isinstance(feed, str) or not feed.strip():
            self.problem("feed", "required: the source's name")
        profile = FeedProfile(
            feed=str(feed),
            care_setting=self._care_setting(),
            timezone=self._timezone(),
            ward_component=self._ward_component(),
            code_tables=self._code_tables(),
            legal_status=self._local_fields("legal_status", dated=True),
            risk_flags=self._local_fields("risk_flags", dated=False),
        )
        if self.problems:
            raise ProfileError(self.problems)
        return profile

    def _care_setting(self) -> CareSetting:
        value = self.data.get("care_setting", CareSetting.UNKNOWN)
        try:
            return CareSetting(value)
        except ValueError:
            self.problem(
                "care_setting", f"expected one of {', '.join(c.value for c in CareSetting)}"
            )
            return CareSetting.UNKNOWN

    def _timezone(self) -> str:
        value = self.data.get("timezone", DEFAULT_TIMEZONE)
        try:
            ZoneInfo(str(value))
        except (ZoneInfoNotFoundError, ValueError):
            self.problem("timezone", f"{value!r} is not an IANA time zone such as Europe/London")
            return DEFAULT_TIMEZONE
        return str(value)

    def _ward_component(self) -> Literal[1, 2]:
        value = self.data.get("ward_component", 2)
        if value == 1 and not isinstance(value, bool):
            return 1
        if value != 2 or isinstance(value, bool):
            self.problem("ward_component", "must be 1 (PV1-3.1) or 2 (PV1-3.2, the ITK default)")
        return 2

    def _code_tables(self) -> Mapping[str, Mapping[str, str]]:
        value = self.data.get("code_tables", {})
        if not isinstance(value, Mapping):
            self.problem("code_tables", "must map a coded element to a table")
            return _NO_TABLES
        tables: dict[str, Mapping[str, str]] = {}
        for element_name, table in value.items():
            path = f"code_tables.{element_name}"
            element = CODED_ELEMENTS.get(str(element_name))
            if element is None:
                self.problem(
                    path, f"unknown coded element; expected one of {', '.join(CODED_ELEMENTS)}"
                )
                continue
            if isinstance(table, str):
                try:
                    codes = load_code_table(table)
                    packaged_for = table_element(table)
                except ValueError as exc:
                    self.problem(path, str(exc))
                    continue
                if packaged_for != element.name:
                    self.problem(path, f"table {table!r} is for {packaged_for}, not {element.name}")
                    continue
            else:
                codes, problems = check_codes(element, table, path)
                self.problems.extend(problems)
            tables[element.name] = MappingProxyType(codes)
        return MappingProxyType(tables) if tables else _NO_TABLES

    def _local_fields(self, key: str, *, dated: bool) -> tuple[LocalField, ...]:
        value = self.data.get(key, ())
        if isinstance(value, str | Mapping):
            value = [value]
        if not isinstance(value, list | tuple):
            self.problem(key, "must be a field such as ZU5-2, a mapping, or a list of them")
            return ()
        fields = []
        for index, item in enumerate(value):
            local = self._local_field(f"{key}[{index}]", item, dated=dated)
            if local is not None:
                fields.append(local)
        return tuple(fields)

    def _local_field(self, path: str, item: object, *, dated: bool) -> LocalField | None:
        if isinstance(item, str):
            item = {"field": item}
        if not isinstance(item, Mapping):
            self.problem(path, "must be a field such as ZU5-2 or a mapping with 'field'")
            return None
        allowed = (
            {"field", "observation", "context", "start", "end"}
            if dated
            else {
                "field",
                "observation",
            }
        )
        for extra in sorted(set(map(str, item)) - allowed):
            self.problem(
                f"{path}.{extra}", f"unknown setting; expected {', '.join(sorted(allowed))}"
            )
        value = self._field_ref(f"{path}.field", item.get("field"), required=True)
        observation = item.get("observation")
        if observation is not None and (
            not isinstance(observation, str) or not observation.strip()
        ):
            self.problem(f"{path}.observation", "must be the OBX-3 identifier as text")
            observation = None
        if value is not None and value.segment == "OBX" and observation is None:
            self.problem(
                f"{path}.observation", "required for an OBX field: the OBX-3 identifier to match"
            )
        elif value is not None and value.segment != "OBX" and observation is not None:
            self.problem(f"{path}.observation", "only for an OBX field")
        context = None
        if item.get("context") is not None:
            try:
                context = LegalStatusContext(item["context"])
            except ValueError:
                self.problem(
                    f"{path}.context",
                    f"expected one of {', '.join(c.value for c in LegalStatusContext)}",
                )
        start = self._field_ref(f"{path}.start", item.get("start"))
        end = self._field_ref(f"{path}.end", item.get("end"))
        if value is None:
            return None
        for ref, name in ((start, "start"), (end, "end")):
            if ref is not None and ref.segment != value.segment:
                self.problem(
                    f"{path}.{name}", f"must be a field of {value.segment}, like the value"
                )
        return LocalField(
            value=value,
            observation=observation.strip() if isinstance(observation, str) else None,
            context=context,
            start=start,
            end=end,
        )

    def _field_ref(self, path: str, text: object, *, required: bool = False) -> FieldRef | None:
        if text is None:
            if required:
                self.problem(path, "required: a field such as ZU5-2 or ZMH-3.1")
            return None
        try:
            return FieldRef.parse(str(text))
        except ValueError as exc:
            self.problem(path, str(exc))
            return None


def event_id(feed: str, message_id: str) -> str:
    """The stable id of the event a feed's message becomes: a replay maps to the same id."""
    digest = hashlib.sha256(f"{feed}\x1f{message_id}".encode()).hexdigest()
    return f"ev-{digest[:32]}"
