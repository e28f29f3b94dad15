"""SQLModel tables of both hierarchies and the event log.

Every node row is keyed by its identity's fields (project, slice, mosaic, …) so a lookup needs
no join, a subtree is a key prefix, and the parent is a composite foreign key that cascades
deletes. Tiles and strips carry claim columns because they are the units workers take.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from opticstream_napari.state.lifecycle import Lifecycle

NAME_LENGTH = 200


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite would otherwise hand back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to the state store; use UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class LifecycleColumns(SQLModel):
    """The lifecycle every node shares (spec 1.1), plus attempts and the last error."""

    state: str = Field(default=Lifecycle.PENDING.value, sa_type=String(16), nullable=False)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    attempts: int = Field(default=0, nullable=False)
    last_error: str | None = Field(default=None, sa_type=Text)


class ClaimColumns(SQLModel):
    """Who holds a work unit and when it last proved to be alive."""

    claimed_by: str | None = Field(default=None, sa_type=String(NAME_LENGTH))
    heartbeat_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


def _node_args(table: str, parent: str, keys: list[str], *, queue: bool = False) -> tuple[Any, ...]:
    """Parent foreign key, state check and the indexes the summary and claim queries use."""
    own = keys[:-1]
    referred = ["name"] if parent.endswith("_project") else own
    states = ", ".join(f"'{s.value}'" for s in Lifecycle)
    args: list[Any] = [
        ForeignKeyConstraint(
            own, [f"{parent}.{k}" for k in referred], ondelete="CASCADE", name=f"fk_{table}_parent"
        ),
        CheckConstraint(f"state IN ({states})", name=f"ck_{table}_state"),
    ]
    if len(keys) > 2:
        args.append(Index(f"ix_{table}_summary", "project", "slice", "state"))
    if queue:  # pending units in key order straight from the index, for claims
        args.append(Index(f"ix_{table}_queue", "project", "state", *keys[1:]))
    return tuple(args)


def _index_key() -> Any:
    """A 1-based index column of the composite key (never auto-numbered: identities say it)."""
    return Field(primary_key=True, sa_column_kwargs={"autoincrement": False})


def _project_key() -> Any:
    return Field(primary_key=True, sa_type=String(NAME_LENGTH))


class PSOCTProject(SQLModel, table=True):
    __tablename__ = "psoct_project"

    name: str = _project_key()
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class PSOCTSlice(LifecycleColumns, table=True):
    __tablename__ = "psoct_slice"
    __table_args__ = _node_args("psoct_slice", "psoct_project", ["project", "slice"])

    project: str = _project_key()
    slice: int = _index_key()
    registered: bool = False
    uploaded: bool = False


class PSOCTMosaic(LifecycleColumns, table=True):
    __tablename__ = "psoct_mosaic"
    __table_args__ = _node_args("psoct_mosaic", "psoct_slice", ["project", "slice", "mosaic"])

    project: str = _project_key()
    slice: int = _index_key()
    mosaic: int = _index_key()
    enface_stitched: bool = False
    volume_stitched: bool = False
    enface_uploaded: bool = False
    volume_uploaded: bool = False


class PSOCTBatch(LifecycleColumns, table=True):
    __tablename__ = "psoct_batch"
    __table_args__ = _node_args(
        "psoct_batch", "psoct_mosaic", ["project", "slice", "mosaic", "batch"]
    )

    project: str = _project_key()
    slice: int = _index_key()
    mosaic: int = _index_key()
    batch: int = _index_key()
    complexed: bool = False
    volume_processed: bool = False
    enface_processed: bool = False
    archived: bool = False
    uploaded: bool = False


class PSOCTTile(LifecycleColumns, ClaimColumns, table=True):
    __tablename__ = "psoct_tile"
    __table_args__ = _node_args(
        "psoct_tile", "psoct_batch", ["project", "slice", "mosaic", "batch", "tile"], queue=True
    )

    project: str = _project_key()
    slice: int = _index_key()
    mosaic: int = _index_key()
    batch: int = _index_key()
    tile: int = _index_key()


class LSMProject(SQLModel, table=True):
    __tablename__ = "lsm_project"

    name: str = _project_key()
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class LSMSlice(LifecycleColumns, table=True):
    __tablename__ = "lsm_slice"
    __table_args__ = _node_args("lsm_slice", "lsm_project", ["project", "slice"])

    project: str = _project_key()
    slice: int = _index_key()


class LSMChannel(LifecycleColumns, table=True):
    __tablename__ = "lsm_channel"
    __table_args__ = _node_args("lsm_channel", "lsm_slice", ["project", "slice", "channel"])

    project: str = _project_key()
    slice: int = _index_key()
    channel: int = _index_key()
    mip_stitched: bool = False
    volume_stitched: bool = False
    volume_uploaded: bool = False


class LSMStrip(LifecycleColumns, ClaimColumns, table=True):
    __tablename__ = "lsm_strip"
    __table_args__ = _node_args(
        "lsm_strip", "lsm_channel", ["project", "slice", "channel", "strip"], queue=True
    )

    project: str = _project_key()
    slice: int = _index_key()
    channel: int = _index_key()
    strip: int = _index_key()
    compressed: bool = False
    archived: bool = False
    uploaded: bool = False


class EventLog(SQLModel, table=True):
    """Append-only record of every transition and milestone; the change feed tails it.

    ``txid`` is the writing transaction's id on PostgreSQL (filled by a server default), which
    lets the feed deliver events in commit order; SQLite serialises writers, so ``id`` suffices.
    """

    __tablename__ = "event_log"
    __table_args__ = (
        Index("ix_event_log_project", "project", "id"),
        Index("ix_event_log_txid", "txid"),
    )

    id: int | None = Field(
        default=None, primary_key=True, sa_type=BigInteger().with_variant(Integer(), "sqlite")
    )
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    name: str = Field(sa_type=String(NAME_LENGTH), nullable=False)
    modality: str = Field(sa_type=String(8), nullable=False)
    level: str = Field(sa_type=String(16), nullable=False)
    project: str = Field(sa_type=String(NAME_LENGTH), nullable=False)
    payload: dict[str, Any] = Field(
        default_factory=dict, sa_type=JSON().with_variant(JSONB(), "postgresql"), nullable=False
    )
    txid: int | None = Field(default=None, sa_type=BigInteger)


NodeRow = PSOCTSlice | PSOCTMosaic | PSOCTBatch | PSOCTTile | LSMSlice | LSMChannel | LSMStrip
