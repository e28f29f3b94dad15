"""Work claims: each tile or strip is run by exactly one live worker.

Protocol: a worker *claims* pending units (state becomes running, attempts + 1, ``claimed_by``
and ``heartbeat_at`` set), *heartbeats* while it works, and *completes*, *fails* or *releases*
each unit; finishing checks that the worker still holds the claim. A claim whose heartbeat is
older than the timeout belongs to a dead worker: the next claimer returns it to pending.

PostgreSQL picks units with ``FOR UPDATE SKIP LOCKED``, so claimers never wait on each other;
SQLite serialises writers (``BEGIN IMMEDIATE`` with a busy timeout), which gives the same
guarantee one transaction at a time.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlmodel import Session

from opticstream_napari.identity import Identity, LSMStripId, PSOCTTileId
from opticstream_napari.state.errors import ClaimLost
from opticstream_napari.state.eventlog import append_events
from opticstream_napari.state.events import Event
from opticstream_napari.state.hierarchy import (
    WORK_UNIT_LEVEL,
    Level,
    ProjectKey,
    ident_of_row,
    level_named,
    within,
)
from opticstream_napari.state.lifecycle import Lifecycle
from opticstream_napari.state.models import utcnow
from opticstream_napari.state.node import NodeHandle
from opticstream_napari.state.service import StateService

log = logging.getLogger(__name__)

DEFAULT_HEARTBEAT_TIMEOUT = 60.0
WorkUnit = PSOCTTileId | LSMStripId


@dataclass(frozen=True, slots=True)
class Claim:
    """A unit held by a worker; ``attempt`` counts every claim of the unit so far."""

    ident: WorkUnit
    worker: str
    attempt: int


def default_worker_id() -> str:
    """Unique per process start: host, pid and a random suffix (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _unit_level(project: ProjectKey) -> Level:
    return level_named(project.modality, WORK_UNIT_LEVEL[project.modality])


def claim(
    state: StateService,
    project: ProjectKey,
    worker: str,
    *,
    limit: int = 1,
    scope: Identity | None = None,
    heartbeat_timeout: float = DEFAULT_HEARTBEAT_TIMEOUT,
) -> list[Claim]:
    """Take up to ``limit`` pending units of the project (or of ``scope``), in key order.

    In the same transaction, expired claims first return to the queue, so a dead worker's
    units are retried without a separate sweeper.
    """
    level = _unit_level(project)
    model: Any = level.model

    def take() -> list[Claim]:
        with state.database.writing() as session:
            events: list[Event] = []
            _recover(session, level, project, heartbeat_timeout, events)
            session.flush()
            rows = session.scalars(
                select(model)
                .where(within(model, scope or project), model.state == Lifecycle.PENDING.value)
                .order_by(*(getattr(model, k) for k in level.keys))
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            claims = []
            for row in rows:
                node = NodeHandle(level, ident_of_row(level, row), row, events)
                node.take_claim(worker)
                claims.append(Claim(node.ident, worker, node.attempts))  # type: ignore[arg-type]
            session.flush()
            append_events(session, events)
            return claims

    return state.database.retrying(take)


def heartbeat(state: StateService, project: ProjectKey, worker: str) -> int:
    """Prove ``worker`` is alive; returns how many of its claims are still held."""
    model: Any = _unit_level(project).model

    def beat() -> int:
        with state.database.writing() as session:
            result = session.connection().execute(
                update(model)
                .where(model.project == project.name, model.claimed_by == worker,
                       model.state == Lifecycle.RUNNING.value)
                .values(heartbeat_at=utcnow())
            )
            return result.rowcount

    return state.database.retrying(beat)


def recover_expired(
    state: StateService, project: ProjectKey, timeout: float = DEFAULT_HEARTBEAT_TIMEOUT
) -> list[WorkUnit]:
    """Return claims without a heartbeat for ``timeout`` seconds to pending; list them."""
    level = _unit_level(project)

    def recover() -> list[WorkUnit]:
        with state.database.writing() as session:
            events: list[Event] = []
            recovered = _recover(session, level, project, timeout, events)
            session.flush()
            append_events(session, events)
            return recovered

    return state.database.retrying(recover)


def _recover(
    session: Session, level: Level, project: ProjectKey, timeout: float, events: list[Event]
) -> list[WorkUnit]:
    model: Any = level.model
    cutoff = utcnow() - timedelta(seconds=timeout)
    rows = session.scalars(
        select(model)
        .where(model.project == project.name, model.state == Lifecycle.RUNNING.value,
               model.heartbeat_at < cutoff)
        .with_for_update(skip_locked=True)
    ).all()
    recovered = []
    for row in rows:
        node = NodeHandle(level, ident_of_row(level, row), row, events)
        worker = row.claimed_by
        log.warning("claim of %s by %s expired; back to pending", node.ident, worker)
        node.mark_pending({"reason": "claim expired", "worker": worker})
        recovered.append(node.ident)
    return recovered  # type: ignore[return-value]


@contextmanager
def _held(state: StateService, held: Claim) -> Iterator[NodeHandle]:
    with state.update(held.ident, create=False) as node:
        if node.state is not Lifecycle.RUNNING or node.claimed_by != held.worker:
            raise ClaimLost(
                f"{held.ident} is no longer held by {held.worker} "
                f"(now {node.state}, held by {node.claimed_by or 'nobody'}); its result is dropped"
            )
        yield node


def complete(
    state: StateService, held: Claim, extra: dict[str, Any] | None = None, *, flags: tuple[str, ...] = ()
) -> None:
    """Mark the unit completed, raising ``flags`` (e.g. a strip's ``compressed``) in the same
    transaction, so no crash can leave a completed unit without its milestone."""
    with _held(state, held) as node:
        for flag in flags:
            node.set_flag(flag)
        node.mark_completed(extra)


def fail(state: StateService, held: Claim, error: str) -> None:
    with _held(state, held) as node:
        node.mark_failed(error)


def release(state: StateService, held: Claim, reason: str = "released") -> None:
    """Give a unit back untouched (e.g. on shutdown) so another worker takes it."""
    with _held(state, held) as node:
        node.mark_pending({"reason": reason, "worker": held.worker})


@contextmanager
def keep_alive(
    state: StateService, project: ProjectKey, worker: str, interval: float
) -> Iterator[None]:
    """Heartbeat from a background thread while the block runs."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            try:
                heartbeat(state, project, worker)
            except Exception:  # a missed beat is retried next interval; the timeout allows it
                log.exception("heartbeat of %s failed", worker)

    thread = threading.Thread(target=beat, name=f"heartbeat-{worker}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
