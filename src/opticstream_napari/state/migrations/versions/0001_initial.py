"""Both hierarchies with tiles as rows, claim columns, and the append-only event log.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_STATES = "'pending', 'running', 'completed', 'failed', 'skipped'"
_TIME = sa.DateTime(timezone=True)
_NAME = sa.String(length=200)

# table, parent table, key columns, milestone flags, claimable
_NODES = (
    ("psoct_slice", "psoct_project", ("project", "slice"), ("registered", "uploaded"), False),
    ("psoct_mosaic", "psoct_slice", ("project", "slice", "mosaic"),
     ("enface_stitched", "volume_stitched", "enface_uploaded", "volume_uploaded"), False),
    ("psoct_batch", "psoct_mosaic", ("project", "slice", "mosaic", "batch"),
     ("complexed", "volume_processed", "enface_processed", "archived", "uploaded"), False),
    ("psoct_tile", "psoct_batch", ("project", "slice", "mosaic", "batch", "tile"), (), True),
    ("lsm_slice", "lsm_project", ("project", "slice"), (), False),
    ("lsm_channel", "lsm_slice", ("project", "slice", "channel"),
     ("mip_stitched", "volume_stitched", "volume_uploaded"), False),
    ("lsm_strip", "lsm_channel", ("project", "slice", "channel", "strip"),
     ("compressed", "archived", "uploaded"), True),
)


def _node_columns(keys: tuple[str, ...], flags: tuple[str, ...], claimable: bool) -> list:
    columns = [
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.Column("started_at", _TIME, nullable=True),
        sa.Column("finished_at", _TIME, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("project", _NAME, nullable=False),
        *(sa.Column(k, sa.Integer(), autoincrement=False, nullable=False) for k in keys[1:]),
        *(sa.Column(f, sa.Boolean(), nullable=False) for f in flags),
    ]
    if claimable:
        columns += [
            sa.Column("claimed_by", _NAME, nullable=True),
            sa.Column("heartbeat_at", _TIME, nullable=True),
        ]
    return columns


def upgrade() -> None:
    op.create_table(
        "event_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", _TIME, nullable=False),
        sa.Column("name", _NAME, nullable=False),
        sa.Column("modality", sa.String(length=8), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("project", _NAME, nullable=False),
        sa.Column("payload", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
                  nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_event_log_project", "event_log", ["project", "id"])
    for modality in ("psoct", "lsm"):
        op.create_table(
            f"{modality}_project",
            sa.Column("name", _NAME, nullable=False),
            sa.Column("created_at", _TIME, nullable=False),
            sa.PrimaryKeyConstraint("name"),
        )
    for table, parent, keys, flags, claimable in _NODES:
        referred = ["name"] if parent.endswith("_project") else list(keys[:-1])
        op.create_table(
            table,
            *_node_columns(keys, flags, claimable),
            sa.CheckConstraint(f"state IN ({_STATES})", name=f"ck_{table}_state"),
            sa.ForeignKeyConstraint(
                list(keys[:-1]), [f"{parent}.{k}" for k in referred],
                name=f"fk_{table}_parent", ondelete="CASCADE",
            ),
            sa.PrimaryKeyConstraint(*keys),
        )
        if len(keys) > 2:
            op.create_index(f"ix_{table}_summary", table, ["project", "slice", "state"])
        if claimable:
            op.create_index(f"ix_{table}_queue", table, ["project", "state", *keys[1:]])


def downgrade() -> None:
    for table, *_ in reversed(_NODES):
        op.drop_table(table)
    for modality in ("psoct", "lsm"):
        op.drop_table(f"{modality}_project")
    op.drop_table("event_log")
