"""Follow-up after a mental health inpatient discharge: which standard applies, and when it is due.

Section 5 of the UK ADT and discharge domain brief:

- **72 hours**: NHS Standard Contract, Schedule 4A (since April 2020) — everyone discharged from
  an adult mental health inpatient bed to their residence, a care home, residential
  accommodation or non-psychiatric care is followed up within 72 hours;
- **48 hours**: NICE QS159 — within 48 hours when a suicide risk has been identified (here: the
  stay carries a risk flag);
- **7 days**: still used locally for some rehabilitation beds (configure a rule for it).

`follow_up_for` applies the first matching `FollowUpRule` (so `DEFAULT_RULES` checks 48 h
high-risk before 72 h) to a *discharge* event and says, in `FollowUp.reason`, why it applied.
Only ``discharge`` events start the clock: a leave of absence (A21) is never a discharge (the
patient is still an inpatient, the responsible clinician can recall them).

Choices, each in the safer direction (a spurious follow-up task costs a phone call; a missed one
can cost a life — NCISH: post-discharge suicides peak on day 3):

- no discharge destination (or a code outside the NHS list) → still in the cohort, said so;
- age unknown → the rule applies, said so (an adult treatment function only changes the words);
- patient class missing or not an HL7 table 0004 code → treated as inpatient, said so;
- records that say the patient died but a destination that does not (79) → still in the
  cohort, said so: only the destination excludes;
- a backdated discharge gets a due time that may already be past: it is returned all the same,
  for the engine to escalate at once (domain brief 7.10);
- the due time is the discharge instant plus `due_after` in elapsed UTC time, so a clock change
  inside the window neither adds nor removes an hour (7.8); a discharge known only by its date
  counts from the start of that day (the earlier, safer deadline).

Pure: no I/O, no logging.

The rules as data are in `rules`, applying them in `evaluation`, reading them from the
configuration in `from_config`.
"""

from __future__ import annotations

from mappings.clinical.follow_up.evaluation import discharge_instant as discharge_instant
from mappings.clinical.follow_up.evaluation import follow_up_for as follow_up_for
from mappings.clinical.follow_up.evaluation import no_follow_up_reason as no_follow_up_reason
from mappings.clinical.follow_up.from_config import FollowUpRules as FollowUpRules
from mappings.clinical.follow_up.from_config import FollowUpRuleSettings as FollowUpRuleSettings
from mappings.clinical.follow_up.from_config import RuleError as RuleError
from mappings.clinical.follow_up.from_config import rules_from_mapping as rules_from_mapping
from mappings.clinical.follow_up.rules import ADULT_TREATMENT_FUNCTIONS as ADULT_TREATMENT_FUNCTIONS
from mappings.clinical.follow_up.rules import DEFAULT_RULES as DEFAULT_RULES
from mappings.clinical.follow_up.rules import EXCLUDED_DESTINATIONS as EXCLUDED_DESTINATIONS
from mappings.clinical.follow_up.rules import LONDON as LONDON
from mappings.clinical.follow_up.rules import FollowUp as FollowUp
from mappings.clinical.follow_up.rules import FollowUpRule as FollowUpRule
from mappings.clinical.follow_up.rules import age_on as age_on
from mappings.clinical.follow_up.rules import describe_duration as describe_duration

__all__ = [
    "ADULT_TREATMENT_FUNCTIONS",
    "DEFAULT_RULES",
    "EXCLUDED_DESTINATIONS",
    "FollowUp",
    "FollowUpRule",
    "FollowUpRuleSettings",
    "FollowUpRules",
    "RuleError",
    "age_on",
    "describe_duration",
    "discharge_instant",
    "follow_up_for",
    "no_follow_up_reason",
    "rules_from_mapping",
]
