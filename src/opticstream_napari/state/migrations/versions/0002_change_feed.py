"""Change feed: commit-ordered event delivery and a wake-up for listeners on PostgreSQL.

``event_log.txid`` records the writing transaction (PostgreSQL fills it); the feed delivers an
event only once every older transaction has finished, so ids assigned out of commit order are
never skipped. A statement trigger sends one NOTIFY per writing transaction. SQLite serialises
writers, so there the column stays empty and the feed tails the log by id.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

CHANNEL = "opticstream_events"


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    default = sa.text("(pg_current_xact_id()::text::bigint)") if postgres else None
    with op.batch_alter_table("event_log") as batch:
        batch.add_column(sa.Column("txid", sa.BigInteger(), nullable=True, server_default=default))
    op.create_index("ix_event_log_txid", "event_log", ["txid"])
    if postgres:
        op.execute(
            "CREATE FUNCTION opticstream_notify_event() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN PERFORM pg_notify('{CHANNEL}', ''); RETURN NULL; END $$"
        )
        op.execute(
            "CREATE TRIGGER event_log_notify AFTER INSERT ON event_log "
            "FOR EACH STATEMENT EXECUTE FUNCTION opticstream_notify_event()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER event_log_notify ON event_log")
        op.execute("DROP FUNCTION opticstream_notify_event()")
    op.drop_index("ix_event_log_txid", table_name="event_log")
    with op.batch_alter_table("event_log") as batch:
        batch.drop_column("txid")
