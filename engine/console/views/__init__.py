"""The console's pages as pure functions: view models in, escaped HTML out (no I/O here).

One module per page. A viewer's pages never carry patient data: no payload, no event, no
patient key, no free text that came from a message or a destination (reasons, errors,
responses), only `MASK` (see `templates.shown`).
"""

from __future__ import annotations

from collections.abc import Callable

Renderer = Callable[[str, str], str]
"""(destination, canonical event JSON) → the payload that destination is sent."""
