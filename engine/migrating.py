"""`carebridge migrate`: the store's schema brought up to date by its owner.

On PostgreSQL the owner's URL comes from CAREBRIDGE_MIGRATE_URL, given to this one command and
never to the engine; the engine's role (the user of store.url) is then granted what the engine
needs and, on the audit log, only SELECT and INSERT (`engine.store.roles`, docs/deploy.md).
Only the config file's ``store:`` is read, so none of the engine's other secrets are needed.
Exit 0 migrated, 1 refused (one line on stderr saying why).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from engine.config import ConfigError, load_store_config

OWNER_URL_VARIABLE = "CAREBRIDGE_MIGRATE_URL"
"""The schema owner's URL, for `carebridge migrate` only: kept out of the engine's config."""
EXIT_OK, EXIT_REJECTED = 0, 1


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    migrate = sub.add_parser(
        "migrate",
        help="bring the store's schema up to date as its owner (PostgreSQL: the owner's URL in "
        f"${OWNER_URL_VARIABLE}), then grant the engine's role what it needs",
    )
    migrate.add_argument("-c", "--config", type=Path, help="YAML config file (its store: only)")


def _fail(message: str) -> int:
    print(f"carebridge: {message}", file=sys.stderr)
    return EXIT_REJECTED


def cmd_migrate(config_path: Path | None) -> int:
    from engine.store import MigrationRefused, RoleProblem, StoreError, migrate_as_owner

    try:
        store = load_store_config(config_path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_REJECTED
    owner_url = os.environ.get(OWNER_URL_VARIABLE) or None
    try:
        done = asyncio.run(migrate_as_owner(store, owner_url))
    except (RoleProblem, MigrationRefused) as exc:
        return _fail(str(exc))
    except StoreError as exc:
        reason = str(exc.__cause__ or exc).splitlines()[0]
        return _fail(f"the store refused or did not answer: {reason}")
    if done.engine_role is None:
        print(f"store migrated to {done.revision}; no separate engine role "
              f"({OWNER_URL_VARIABLE} is not set)")  # fmt: skip
    else:
        others = [t for t in done.tables if t not in ("audit_log", "alembic_version")]
        print(f"store migrated to {done.revision}; role {done.engine_role} may SELECT, INSERT, "
              f"UPDATE and DELETE on {len(others)} tables, SELECT alembic_version, and only "
              "SELECT and INSERT on audit_log")  # fmt: skip
    return EXIT_OK
