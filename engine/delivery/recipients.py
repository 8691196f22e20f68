"""Which recipient of a notification destination gets a notification, by which rule, and why
(pure).

Each recipient is a rule; its criteria (GP practice, the patient's area: home postcode district
or the practice's ICB from ``transitions.practice_icbs``, age band at discharge, treatment
function, care setting, provider, source) must all match, and one that sets none matches
everyone (the default). The first matching rule, in the order of the config, chooses, except
for an **out-of-area** discharge (``CareEvent.transitions``): the first rule that matched on
where the patient lives (GP practice, postcode district, ICB) chooses, so the patient's home
team is told; when no such rule is configured, the first matching rule does, and the choice
says so (the sender raises an operator alert saying why).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from engine.config import NotificationRecipient
from mappings.clinical.follow_up import age_on, discharge_instant
from mappings.clinical.follow_up.rules import LONDON
from mappings.model import AddressUse, CareEvent, TransitionKind

HOME_CRITERIA = frozenset({"GP practice", "home postcode district", "ICB"})


@dataclass(frozen=True, slots=True)
class Choice:
    recipient: NotificationRecipient
    rule: str
    """``recipients[<index>] <name>``: the rule that chose."""
    why: str
    """What matched, in words (identifiers only, never an address)."""
    out_of_area_default: bool = False
    """An out-of-area patient with no home team configured, sent by a rule that does not know
    where they live: an operator should see why."""


def choose_recipient(
    recipients: Sequence[NotificationRecipient],
    event: CareEvent,
    practice_icbs: Mapping[str, str] | None = None,
) -> Choice | None:
    """The recipient the rules choose for `event` (for a withdrawal: the discharge it
    withdraws), or None when no rule matches."""
    verdicts = [_verdict(r, event, practice_icbs or {}) for r in recipients]
    matched = [(i, r, v.matched) for i, (r, v) in enumerate(zip(recipients, verdicts, strict=True))
               if v.failed is None]  # fmt: skip
    if not matched:
        return None
    out_of_area = any(t.kind is TransitionKind.OUT_OF_AREA for t in event.transitions)
    if out_of_area:
        for index, recipient, reasons in matched:
            if HOME_CRITERIA.intersection(what for what, _, _ in reasons):
                why = f"{_words(reasons)}; out of area: the patient's home team"
                return Choice(recipient, f"recipients[{index}] {recipient.name}", why)
    index, recipient, reasons = matched[0]
    why = _words(reasons)
    if out_of_area:
        why += "; OUT OF AREA and no rule for the patient's home area: sent to this default"
    return Choice(recipient, f"recipients[{index}] {recipient.name}", why, out_of_area)


def explain(
    recipients: Sequence[NotificationRecipient],
    event: CareEvent,
    practice_icbs: Mapping[str, str] | None = None,
) -> str:
    """Why the rules choose what they choose (or nothing), in words: the criteria the chosen
    rule matched, and the earlier rules passed over with the criterion each failed."""
    verdicts = [_verdict(r, event, practice_icbs or {}) for r in recipients]
    choice = choose_recipient(recipients, event, practice_icbs)
    skipped = [f"{r.name} ({v.failed})" for r, v in zip(recipients, verdicts, strict=True)
               if v.failed is not None]  # fmt: skip
    if choice is None:
        return "no recipient matches: " + ", ".join(skipped)
    chosen = recipients.index(choice.recipient)
    passed = [f"{r.name} ({v.failed})"
              for r, v in zip(recipients[:chosen], verdicts[:chosen], strict=True)
              if v.failed is not None]  # fmt: skip
    words = _words(verdicts[chosen].matched)
    note = choice.why.removeprefix(words)  # the out-of-area note, if any, said last
    return words + ("; passed over: " + ", ".join(passed) if passed else "") + note


@dataclass(frozen=True, slots=True)
class _Verdict:
    matched: list[tuple[str, str, str]]
    """(criterion, the config key, the value met) for each criterion the rule sets."""
    failed: str | None = None
    """The first criterion the event fails, in words; None when the rule matches."""


def _words(reasons: list[tuple[str, str, str]]) -> str:
    said = "; ".join(f"{what} {value} is in its {key}" for what, key, value in reasons)
    return said or "it sets no criteria (the fallback for every patient)"


def _verdict(
    r: NotificationRecipient, event: CareEvent, practice_icbs: Mapping[str, str]
) -> _Verdict:
    """Which of `r`'s criteria the event meets; the first it fails."""
    patient, stay = event.patient, event.stay
    practice = (patient.gp_practice_ods or "").strip().upper() or None
    function = stay.specialty.code if stay and stay.specialty else None
    setting = stay.care_setting.value if stay else None
    provider = stay.provider_ods if stay else None
    age = _age(event)
    checks: list[tuple[bool, str, str, str | None, bool]] = [
        # (set, criterion, key, value shown, met)
        (bool(r.gp_practices), "GP practice", "gp_practices", practice,
         practice in r.gp_practices),
        (bool(r.postcode_districts), "home postcode district", "postcode_districts", None,
         _district(event) in r.postcode_districts),
        (bool(r.icbs), "ICB", "icbs", practice_icbs.get(practice or ""),
         practice_icbs.get(practice or "") in r.icbs),
        (r.min_age is not None or r.max_age is not None, "age", "age band",
         None if age is None else str(age), _in_band(r, age)),
        (bool(r.treatment_functions), "treatment function", "treatment_functions", function,
         function in r.treatment_functions),
        (bool(r.care_settings), "care setting", "care_settings", setting,
         setting in r.care_settings),
        (bool(r.providers), "provider", "providers", provider, provider in r.providers),
        (bool(r.sources), "source", "sources", event.source.feed,
         event.source.feed in r.sources),
    ]  # fmt: skip
    matched: list[tuple[str, str, str]] = []
    for applies, what, key, value, met in checks:
        if not applies:
            continue
        if not met:  # a postcode district is part of an address: never in the words
            shown = "" if what == "home postcode district" else f" {value or 'not recorded'}"
            return _Verdict(matched, f"{what}{shown} not in its list")
        matched.append((what, key, value or "(withheld)"))
    return _Verdict(matched)


def _district(event: CareEvent) -> str | None:
    home = next((a for a in event.patient.addresses if a.use is AddressUse.HOME and a.postcode),
                None)  # fmt: skip
    if home is None or home.postcode is None:
        return None
    text = "".join(home.postcode.split()).upper()
    return text[:-3] if 5 <= len(text) <= 7 else None


def _age(event: CareEvent) -> int | None:
    born, left = event.patient.birth_date, discharge_instant(event)
    if born is None or left is None:
        return None
    return age_on(born, left[0].astimezone(LONDON).date())


def _in_band(r: NotificationRecipient, age: int | None) -> bool:
    if age is None:
        return False  # an unknown age is in no band: a rule with a band does not match
    return (r.min_age is None or age >= r.min_age) and (r.max_age is None or age <= r.max_age)
