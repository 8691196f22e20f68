"""Every alert the engine raises, to a signed webhook and the log.

Operator alerts (``alerts:``), each raised **once** while its condition holds and followed by a
"cleared" when it stops (so a receiver can close its incident):

- ``backlog.<destination>``: the destination's oldest pending delivery (not held by an
  operator) was queued more than `backlog_older_than` ago;
- ``dead_letter.<delivery id>``: a delivery is dead-lettered and unresolved (cleared when an
  operator resolves or replays it);
- ``silent_source.<source>``: no message received from the source for its configured time
  (counted from the engine's start for a source that never sent one).

Follow-up alerts (``follow_up.alert_webhook``), each raised once and never cleared:
``follow_up_overdue.<event id>`` and ``notification_unacknowledged.<event id>``.

MESH alerts (to ``alerts.webhook``), raised once each by a MESH destination's inbox watch
(`engine.mesh_inbox`): ``mesh_no_mailbox.<delivery id>`` and
``mesh_business_ack_missing.<delivery id>``.

Alerts carry identifiers, counts and the names of sources and destinations only: never a
payload, a patient key or a destination's error text (which may quote patient data).

What is raised lives in the store (`alert_state`; the follow-up row for a follow-up alert), so
a restart neither raises a standing alert again nor loses the "cleared" of one that stopped
while the engine was down; with several replicas a claim in the store decides which one posts
each raise and clear. Every alert has one Idempotency-Key scheme,
``carebridge.alert.<key>.<episode>.<raised|cleared>``, its episode derived from the condition
itself, so a repeat (a replica that died mid-POST) carries the key of the first.

The rooms: evaluate.py (what to raise and clear: pure), watch.py (the check loops: read the
store, decide, claim, post, settle); the reads and the alert state are `engine.store.alerts`;
the settings `engine.config.alerts`.
"""

from engine.alerts.evaluate import (
    Alert,
    AlertState,
    Condition,
    evaluate,
    follow_up_alerts,
)
from engine.alerts.watch import (
    CLAIM_LEASE,
    AlertRefused,
    check,
    check_follow_ups,
    post_alert,
    run,
    watch_follow_ups,
)
from engine.store.alerts import Backlog, DeadLetter, Observed

__all__ = [
    "CLAIM_LEASE",
    "Alert",
    "AlertRefused",
    "AlertState",
    "Backlog",
    "Condition",
    "DeadLetter",
    "Observed",
    "check",
    "check_follow_ups",
    "evaluate",
    "follow_up_alerts",
    "post_alert",
    "run",
    "watch_follow_ups",
]
