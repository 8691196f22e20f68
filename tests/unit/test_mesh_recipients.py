"""A GP practice's MESH mailbox: the config's table before endpoint lookup, a mailbox found kept
for `lookup_cache`, "none" asked again (a mailbox registered since is found at the replay)."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.config import MeshDestination
from engine.delivery.mesh import Recipients
from tests.mesh.kit import config


@dataclass
class Lookups:
    answers: dict[str, list[str]] = field(default_factory=dict)
    asked: list[tuple[str, str]] = field(default_factory=list)

    async def lookup(self, ods_code: str, workflow_id: str) -> list[str]:
        self.asked.append((ods_code, workflow_id))
        return self.answers.get(ods_code, [])

    async def send(self, recipient: str, body: bytes, *, workflow_id: str, local_id: str,
                   subject: str, content_type: str) -> str:  # fmt: skip
        raise AssertionError("not sent here")


def destination(extra: str = "") -> MeshDestination:
    dest = config("http://mesh.example", extra=extra).destination("gp-mesh")
    assert isinstance(dest, MeshDestination)
    return dest


async def test_the_table_wins_and_lookup_is_not_asked() -> None:
    link = Lookups({"B12345": ["X26LOOKUP"]})
    recipients = Recipients(destination("\n    mailboxes: {B12345: X26TABLE}"), link)
    assert await recipients.mailbox("b12345", "TOC_FHIR_MH_DISCH") == "X26TABLE"
    assert link.asked == []


async def test_a_found_mailbox_is_kept_until_the_cache_runs_out() -> None:
    now = [0.0]
    link = Lookups({"B12345": ["X26LOOKUP"]})
    recipients = Recipients(destination(), link, clock=lambda: now[0])
    for _ in range(3):
        assert await recipients.mailbox("B12345", "TOC_FHIR_MH_DISCH") == "X26LOOKUP"
    assert len(link.asked) == 1
    now[0] += 3601
    await recipients.mailbox("B12345", "TOC_FHIR_MH_DISCH")
    assert len(link.asked) == 2


async def test_no_mailbox_is_asked_again_and_lookup_off_means_table_only() -> None:
    link = Lookups()
    recipients = Recipients(destination(), link)
    assert await recipients.mailbox("Y99977", "TOC_FHIR_MH_DISCH") is None
    link.answers["Y99977"] = ["X26NEW"]
    assert await recipients.mailbox("Y99977", "TOC_FHIR_MH_DISCH") == "X26NEW"
    table_only = Recipients(destination("\n    lookup: false"), Lookups({"B1": ["X"]}))
    assert await table_only.mailbox("B1", "TOC_FHIR_MH_DISCH") is None
