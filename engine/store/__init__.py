"""The durable store: the message log, canonical events and the delivery outbox.

SQLite (WAL, synchronous=FULL) is the embedded default; PostgreSQL by URL for several replicas,
where claims use ``FOR UPDATE SKIP LOCKED``. Every write the engine's guarantees rest on is one
transaction here:

- `record_intake`: a batch of received messages, each with its message-log row, its event and
  one delivery row per routed destination, then the caller acks the AMQP deliveries;
- `claim_due`: the oldest pending delivery per (destination, patient) whose time has come,
  leased so no other worker or replica takes it meanwhile;
- `finish_delivery`: the attempts made and the outcome (delivered, rescheduled, dead-lettered),
  each only while the row says it may be (outcomes.py), so a replayed write records nothing more.

The rooms: schema.py (tables) and migrations/ (Alembic, applied at start by migrate.py);
records.py (what goes in and comes out); statuses.py (the stored states, as enums); base.py
(opening, the read and write connections, the free space SQLite needs); servers.py (which
PostgreSQL server answers, logged when a failover changes it); intake.py (the intake write);
outbox.py (claim, renew leases, release); outcomes.py (finish: attempts and
outcomes, guarded); lookups.py (reads for corrections, health
and tests); pruning.py (retention); alerts.py (what the alert watches read; what is raised,
claimed by one replica at a time); errors.py (StoreUnavailable, StoreFull, StoreRefused:
nothing of SQLAlchemy's leaves the store); waiting.py (the one "wait until the store answers"
policy); operator.py (replay, hold, release, resolve), remap.py (the re-map write), audit.py
(the audit log's writes), sole_engine.py (one running engine per SQLite file), roles.py (on
PostgreSQL, the owner's grants to the engine's role: the audit log is append-only for it) and
mesh.py (a MESH destination's uploads, inbox and
acknowledgements). `Store` (core.py) is what callers hold. The operators' reads are functions
over it: console_search.py (message search) and console_reads.py (detail, dead letters, audit
log, figures), returning console_models.py.
"""

from engine.store.base import migrate_as_owner
from engine.store.core import Store
from engine.store.errors import StoreError, StoreFull, StoreRefused, StoreUnavailable
from engine.store.lookups import History
from engine.store.migrate import MigrationRefused
from engine.store.records import (
    AcceptedEvent,
    AttemptRecord,
    ClaimedDelivery,
    DeadLettered,
    Delivered,
    DeliveryOutcome,
    FollowUpRecord,
    IntakeRecord,
    IntakeResult,
    Original,
    OutcomeRefused,
    Rescheduled,
    idempotency_key,
)
from engine.store.roles import Migrated, RoleProblem
from engine.store.sole_engine import FileInUse, SoleEngine
from engine.store.statuses import (
    OPEN_FOLLOW_UPS,
    DeliveryStatus,
    FollowUpStatus,
    MessageStatus,
)
from engine.store.waiting import until_the_store_answers

__all__ = [
    "OPEN_FOLLOW_UPS",
    "AcceptedEvent",
    "AttemptRecord",
    "ClaimedDelivery",
    "DeadLettered",
    "Delivered",
    "DeliveryOutcome",
    "DeliveryStatus",
    "FileInUse",
    "FollowUpRecord",
    "FollowUpStatus",
    "History",
    "IntakeRecord",
    "IntakeResult",
    "MessageStatus",
    "Migrated",
    "MigrationRefused",
    "Original",
    "OutcomeRefused",
    "Rescheduled",
    "RoleProblem",
    "SoleEngine",
    "Store",
    "StoreError",
    "StoreFull",
    "StoreRefused",
    "StoreUnavailable",
    "idempotency_key",
    "migrate_as_owner",
    "until_the_store_answers",
]
