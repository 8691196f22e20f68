"""The autouse fixture in tests/conftest.py puts logging back after every test: structlog's
configuration and the root logger's handlers and level, each of which an in-process run of
`carebridge` changes."""

from __future__ import annotations

import logging

import structlog

from tests.conftest import logging_as_found


def test_structlog_and_the_root_loggers_handlers_and_level_are_put_back() -> None:
    root = logging.getLogger()
    config, handlers, level = structlog.get_config(), root.handlers[:], root.level
    with logging_as_found():
        structlog.configure(processors=[structlog.processors.KeyValueRenderer()])
        root.handlers[:] = [logging.NullHandler()]
        root.setLevel(level + 7)
    assert structlog.get_config() == config
    assert root.handlers == handlers
    assert root.level == level
