"""Test-only fault injection for the engine subprocess of `tests/faults/test_poison.py`.

Put this folder first on the engine's PYTHONPATH and set CB_FAULT_CRASH_MARKER: the engine
process then dies by SIGKILL the moment intake starts to prepare a message whose bytes hold the
marker, as it would from a segfault in a parser's C extension or the kernel's OOM killer on one
pathological message. Nothing of the engine is changed: the real consumer, prefetch, batch and
acks are at work when it dies. Each crash appends "<pid> <unix time>" to CB_FAULT_CRASH_LOG
first, so the test can count the deliveries of the poison message.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

_MARKER = os.environ.get("CB_FAULT_CRASH_MARKER", "").encode()

if _MARKER:
    import engine.preparation as _preparation

    _original = _preparation.prepare

    def _crashing_prepare(source: str, payload: bytes, **options: Any) -> Any:
        if _MARKER in payload:
            with open(os.environ["CB_FAULT_CRASH_LOG"], "a") as crashes:
                crashes.write(f"{os.getpid()} {time.time():.3f}\n")
            os.kill(os.getpid(), signal.SIGKILL)
        return _original(source, payload, **options)

    _preparation.prepare = _crashing_prepare
