"""Frozen views of nodes: what readers get, safe to hand to another thread or the GUI."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from opticstream_napari.identity import Identity
from opticstream_napari.state.hierarchy import Level, ident_of_row
from opticstream_napari.state.lifecycle import DONE_STATES, Lifecycle


@dataclass(frozen=True, slots=True)
class NodeView:
    """One node as it stood when read; never changes, never touches the database."""

    ident: Identity
    state: Lifecycle
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    last_error: str | None
    flags: Mapping[str, bool] = field(default_factory=dict)
    claimed_by: str | None = None
    heartbeat_at: datetime | None = None

    @property
    def finished(self) -> bool:
        """The original's notion (finish time set): true for failed nodes too."""
        return self.finished_at is not None

    @property
    def done(self) -> bool:
        """Counts towards readiness: completed or explicitly skipped, never failed."""
        return self.state in DONE_STATES

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the CLI and logs."""
        data: dict[str, Any] = {
            "ident": self.ident.to_dict(),
            "state": self.state.value,
            "attempts": self.attempts,
            "last_error": self.last_error,
            **self.flags,
        }
        for name in ("created_at", "updated_at", "started_at", "finished_at"):
            data[name] = _iso(getattr(self, name))
        if self.claimed_by is not None:
            data["claimed_by"] = self.claimed_by
            data["heartbeat_at"] = _iso(self.heartbeat_at)
        return data


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def view_of(level: Level, row: Any) -> NodeView:
    return NodeView(
        ident=ident_of_row(level, row),
        state=Lifecycle(row.state),
        created_at=row.created_at,
        updated_at=row.updated_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        attempts=row.attempts,
        last_error=row.last_error,
        flags={name: bool(getattr(row, name)) for name in level.flags},
        claimed_by=getattr(row, "claimed_by", None),
        heartbeat_at=getattr(row, "heartbeat_at", None),
    )
