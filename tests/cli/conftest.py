"""The CLI tests that call `engine.cli.main` in this process: `main` configures logging to the
standard error pytest captures for that one test; put the logging back after each test, so a
later test does not log to a stream that has been closed."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def _logging_put_back() -> Iterator[None]:
    config = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.configure(**config)
    root.handlers[:] = handlers
    root.setLevel(level)
