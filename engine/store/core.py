"""`Store`: the one object callers hold, made of the rooms of this package."""

from __future__ import annotations

from engine.store.alerts import AlertStates
from engine.store.intake import IntakeWrites
from engine.store.lookups import Lookups
from engine.store.mesh import MeshRecords
from engine.store.outbox import Outbox
from engine.store.pruning import Pruning


class Store(IntakeWrites, Outbox, Lookups, Pruning, AlertStates, MeshRecords):
    """The one object the engine holds for the store; each room of its work is a module here."""
