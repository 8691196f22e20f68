"""The audit log refuses TRUNCATE too (PostgreSQL), beside UPDATE and DELETE (0004): row
triggers do not see a TRUNCATE, a statement trigger does. Only the table's owner could drop
the trigger, and on a deployment with its own engine role (`engine.store.roles`) the engine's
connection may neither truncate nor drop. SQLite has no TRUNCATE.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
