"""Appending to and reading from the append-only event log."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlmodel import Session

from opticstream_napari.identity import Identity
from opticstream_napari.state.events import Event, ident_from_payload
from opticstream_napari.state.models import EventLog, utcnow

_LOG = EventLog.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One logged event as a consumer sees it."""

    id: int
    at: datetime
    name: str
    modality: str
    level: str
    project: str
    payload: dict[str, Any]

    @property
    def ident(self) -> Identity:
        return ident_from_payload(self.name, self.payload)


def append_events(session: Session, events: Sequence[Event]) -> None:
    """Write events in the caller's transaction (no ORM objects: one multi-row insert).

    ``txid`` is left out on purpose so PostgreSQL's server default records the transaction.
    """
    if not events:
        return
    at = utcnow()
    session.connection().execute(
        insert(_LOG),
        [
            {
                "at": at,
                "name": e.name,
                "modality": e.ident.modality,
                "level": e.ident.level,
                "project": e.ident.project,
                "payload": e.payload,
            }
            for e in events
        ],
    )


RECORD_COLUMNS = (
    _LOG.c.id, _LOG.c.at, _LOG.c.name, _LOG.c.modality, _LOG.c.level, _LOG.c.project,
    _LOG.c.payload,
)


def record_of(row: Any) -> EventRecord:
    return EventRecord(row.id, row.at, row.name, row.modality, row.level, row.project, row.payload)


def read_events(
    session: Session,
    *,
    modality: str | None = None,
    project: str | None = None,
    after_id: int = 0,
    limit: int | None = None,
) -> list[EventRecord]:
    """Events in id order, optionally of one project; ``after_id`` pages through the log."""
    query = select(*RECORD_COLUMNS).where(_LOG.c.id > after_id).order_by(_LOG.c.id)
    if modality is not None:
        query = query.where(_LOG.c.modality == modality)
    if project is not None:
        query = query.where(_LOG.c.project == project)
    if limit is not None:
        query = query.limit(limit)
    return [record_of(row) for row in session.connection().execute(query)]
