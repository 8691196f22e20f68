"""Recipient rules (issue 14 point 5): each recipient of a notification destination is a rule
on GP practice, area (postcode district, ICB), age band, treatment function, care setting,
provider and source; the first match chooses, except that an out-of-area patient goes to their
home team when one is configured, else to the default with an operator alert saying why; the
rule that chose is recorded with the notification."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

import orjson

from adapters.webhook import HttpResponse
from engine.config import NotificationDestination, parse_config
from engine.delivery.notification import NotificationSender, render_notice, why_recipient
from engine.delivery.recipients import choose_recipient
from engine.store import ClaimedDelivery
from mappings.clinical.follow_up import DEFAULT_RULES
from mappings.hl7v2.inbound import map_hl7v2
from mappings.model import (
    Address,
    AddressUse,
    CareEvent,
    CareSetting,
    Coding,
    Transition,
    TransitionKind,
)
from mappings.profile import FeedProfile
from tests.adt_factory import adt, patients
from tests.fakes import FakeHttp, answering

NOW = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
BASE = map_hl7v2(adt("A03", patients(1)[0], "R-1", NOW), FeedProfile(feed="mh"))
ICBS = {"B12345": "QWO", "Y55555": "QHM"}

CONFIG = parse_config(
    """
sources: [{name: mh, care_setting: mental_health}]
destinations:
  - name: notify
    type: notification
    ack_base_url: "https://cb.example"
    ack_secret: ${ACK}
    recipients:
      - {name: camhs, url: "https://camhs.example/n", max_age: 17, treatment_functions: ["711"]}
      - {name: practice, url: "https://gp.example/n", gp_practices: [B12345]}
      - {name: home-ls, url: "https://ls.example/n", postcode_districts: [LS2]}
      - {name: home-icb, url: "https://icb.example/n", icbs: [QHM]}
      - {name: acute-team, url: "https://acute.example/n", care_settings: [acute]}
      - {name: older, url: "https://older.example/n", min_age: 65}
      - {name: provider, url: "https://rxt.example/n", providers: [RXT]}
      - {name: default, url: "https://team.example/n"}
routes: []
transitions: {practice_icbs: {B12345: QWO, Y55555: QHM}}
""",
    env={"ACK": "a" * 32},
)


def _notify() -> NotificationDestination:
    dest = CONFIG.destination("notify")
    assert isinstance(dest, NotificationDestination)
    return dest


DEST = _notify()


def event(*, practice: str | None = "B12345", born: date | None = date(1980, 1, 1),
          district: str | None = None, function: str | None = "710",
          setting: CareSetting | None = None,
          provider: str | None = "RXT", away: bool = False) -> CareEvent:  # fmt: skip
    assert BASE.stay is not None
    stay: dict[str, Any] = {
        "provider_ods": provider,
        "specialty": Coding(system="x", code=function) if function else None,
    }
    if setting:
        stay["care_setting"] = setting
    addresses = (Address(use=AddressUse.HOME, postcode=f"{district} 1AA"),) if district else ()
    patient = BASE.patient.model_copy(
        update={"gp_practice_ods": practice, "birth_date": born, "addresses": addresses}
    )
    flags = (Transition(kind=TransitionKind.OUT_OF_AREA, reason="outside"),) if away else ()
    return BASE.model_copy(update={"patient": patient, "transitions": flags,
                                   "stay": BASE.stay.model_copy(update=stay)})  # fmt: skip


def chosen(e: CareEvent) -> tuple[str, str]:
    choice = choose_recipient(DEST.recipients, e, ICBS)
    assert choice is not None
    return choice.recipient.name, choice.why


def test_the_first_matching_rule_chooses_and_says_why() -> None:
    assert chosen(event()) == ("practice", "GP practice B12345 is in its gp_practices")
    assert chosen(event(practice="Y99999")) == ("provider", "provider RXT is in its providers")
    assert chosen(event(practice=None, provider=None)) == (
        "default", "it sets no criteria (the fallback for every patient)")  # fmt: skip


def test_age_band_and_treatment_function_choose_the_camhs_team() -> None:
    name, why = chosen(event(born=date(2010, 1, 1), function="711"))
    assert name == "camhs"
    assert "age 16 is in its age band" in why
    assert "treatment function 711 is in its treatment_functions" in why
    assert chosen(event(born=date(2010, 1, 1), function="710"))[0] == "practice"
    assert chosen(event(born=None, function="711"))[0] == "practice"  # unknown age: no band


def test_care_setting_and_an_older_age_band() -> None:
    assert chosen(event(practice="Y99999", setting=CareSetting.ACUTE))[0] == "acute-team"
    assert chosen(event(practice="Y99999", born=date(1950, 1, 1)))[0] == "older"


def test_an_out_of_area_patient_goes_to_their_home_team() -> None:
    name, why = chosen(event(practice="Y99999", district="LS2", away=True))
    assert name == "home-ls"
    assert "out of area: the patient's home team" in why
    assert "LS2" not in why  # part of an address: never in the words
    assert chosen(event(practice="Y55555", away=True))[0] == "home-icb"  # by the practice's ICB
    assert chosen(event(district="LS2"))[0] == "practice"  # in area: the first match


def test_an_out_of_area_patient_with_no_home_team_goes_to_the_default_saying_why() -> None:
    choice = choose_recipient(DEST.recipients, event(practice="Y99999", away=True), ICBS)
    assert choice is not None
    assert choice.recipient.name == "provider"
    assert choice.out_of_area_default
    assert "OUT OF AREA and no rule for the patient's home area" in choice.why


def claimed(e: CareEvent) -> ClaimedDelivery:
    return ClaimedDelivery(
        id=1, event_id=e.event_id, destination="notify", patient_key="nhs:x",
        idempotency_key=f"{e.event_id}.notify", attempts=0, created_at=NOW, kind="discharge",
        care_setting="mental_health", source="mh", body=e.model_dump_json(exclude_none=True),
    )  # fmt: skip


def test_the_notification_records_the_rule_that_chose() -> None:
    e = event(practice="Y99999", district="LS2", away=True)
    notice = render_notice(claimed(e), e, DEST, DEFAULT_RULES, now=NOW, practice_icbs=ICBS)
    assert notice is not None
    body = orjson.loads(notice.rendered.body)
    assert body["routing"]["recipient"] == "home-ls"
    assert body["routing"]["rule"] == "recipients[2] home-ls"
    assert notice.rendered.headers["X-Carebridge-Recipient-Rule"] == "recipients[2] home-ls"


async def test_the_sender_alerts_an_out_of_area_default_and_records_the_rule() -> None:
    raised: list[tuple[str, Mapping[str, str | int]]] = []

    async def alert(key: str, facts: Mapping[str, str | int]) -> None:
        raised.append((key, facts))

    async def no_original(_: str) -> CareEvent | None:
        return None

    async def issue(_links: object) -> None:
        return None

    http = FakeHttp(answering(HttpResponse(200, b"ok"), HttpResponse(200, b"ok")))
    sender = NotificationSender(DEST, http.post, DEFAULT_RULES, no_original, lambda: NOW,
                                practice_icbs=ICBS, alert=alert, issue=issue)  # fmt: skip
    e = event(practice="Y99999", away=True)
    result = await sender.send(claimed(e))
    assert result.outcome == "delivered"
    assert "by recipients[6] provider" in (result.detail or "")
    [(key, facts)] = raised
    assert key == f"out_of_area_default.{e.event_id}"
    assert facts["recipient"] == "provider"
    home = event(practice="Y99999", district="LS2", away=True)
    await sender.send(claimed(home))
    assert len(raised) == 1  # a home team was found: no alert


def test_the_explanation_names_the_rules_passed_over_and_why() -> None:
    why = why_recipient(DEST.recipients, event(practice="Y99999", district="LS2", away=True),
                        ICBS)  # fmt: skip
    assert why.startswith("home postcode district (withheld) is in its postcode_districts")
    assert "passed over: camhs (age 46 not in its list), practice (GP practice Y99999 not in" in why
    assert "LS2" not in why


def test_the_console_preview_says_which_rule_chose() -> None:
    from engine.console.rendering import render_for

    e = event(practice="Y99999", district="LS2", away=True)
    shown = render_for(CONFIG, "notify", e.model_dump_json(exclude_none=True), now=NOW)
    assert shown.startswith("To home-ls (https://ls.example/n), chosen by recipients[2] home-ls: ")
