"""The operator console: resolutions, holds, an append-only audit log and search indexes.

Columns are added with plain ALTER TABLE (no table copy), so upgrading a large message log is
quick on SQLite as well. The audit log refuses UPDATE and DELETE by trigger on both backends.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from engine.store.schema import Id, UtcDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_RESOLUTION = ("resolved_at", "resolved_by", "resolution")


def _resolution_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("resolved_at", UtcDateTime),
        sa.Column("resolved_by", sa.String(80)),
        sa.Column("resolution", sa.Text),
    ]


def upgrade() -> None:
    for column in _resolution_columns():
        op.add_column("messages", column)
    held: list[sa.Column[object]] = [
        sa.Column("held_at", UtcDateTime),
        sa.Column("held_by", sa.String(80)),
    ]
    for column in _resolution_columns() + held:
        op.add_column("deliveries", column)
    op.create_index("ix_messages_message_key", "messages", ["message_key"])
    op.create_index("ix_messages_source_id", "messages", ["source", "id"])
    op.create_index("ix_messages_status_id", "messages", ["status", "id"])
    op.create_index("ix_messages_event_kind_id", "messages", ["event_kind", "id"])
    op.create_index("ix_deliveries_event", "deliveries", ["event_id"])
    op.create_index(
        "ix_deliveries_status_destination", "deliveries", ["status", "destination", "id"]
    )
    op.create_index("ix_attempts_started_at", "attempts", ["started_at"])
    op.create_table(
        "audit_log",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.Column("actor", sa.String(80), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("message_id", Id),
        sa.Column("delivery_id", Id),
        sa.Column("patient_key", sa.String(200)),
        sa.Column("reason", sa.Text),
        sa.Column("detail", sa.Text),
    )
    op.create_index("ix_audit_log_patient_key", "audit_log", ["patient_key"])
    op.create_index("ix_audit_log_message_id", "audit_log", ["message_id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"
        )
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_log_no_{verb.lower()} BEFORE {verb} ON audit_log "
                "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    op.drop_table("audit_log")
    for name, table in (
        ("ix_attempts_started_at", "attempts"),
        ("ix_deliveries_status_destination", "deliveries"),
        ("ix_deliveries_event", "deliveries"),
        ("ix_messages_event_kind_id", "messages"),
        ("ix_messages_status_id", "messages"),
        ("ix_messages_source_id", "messages"),
        ("ix_messages_message_key", "messages"),
    ):
        op.drop_index(name, table)
    with op.batch_alter_table("deliveries") as batch:
        for column in (*_RESOLUTION, "held_at", "held_by"):
            batch.drop_column(column)
    with op.batch_alter_table("messages") as batch:
        for column in _RESOLUTION:
            batch.drop_column(column)
