"""The state service: locked updates that create missing nodes, consistent reads, cheap peeks.

Three ways to look at a node, as in the original (spec 5):

- :meth:`StateService.update` locks the node's row (creating it and its ancestors if missing)
  and yields a :class:`NodeHandle`; changes and their events commit together on exit.
- :meth:`StateService.read` waits for any writer holding the node, then returns a frozen view.
- :meth:`StateService.peek` returns the last committed view without waiting for anything.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Table, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from opticstream_napari.config import LSMScanConfig, PSOCTScanConfig
from opticstream_napari.identity import Identity
from opticstream_napari.state.database import Database
from opticstream_napari.state.errors import NodeNotFound
from opticstream_napari.state.eventlog import EventRecord, append_events, read_events
from opticstream_napari.state.events import Event
from opticstream_napari.state.hierarchy import (
    MODALITIES,
    PROJECT_MODELS,
    Level,
    ProjectKey,
    child_level,
    ident_of_row,
    level_named,
    level_of,
    levels_of,
    lineage,
    primary_key,
    project_of,
    within,
)
from opticstream_napari.state.lifecycle import Lifecycle
from opticstream_napari.state.models import utcnow
from opticstream_napari.state.node import NodeHandle
from opticstream_napari.state.schema import ensure_schema
from opticstream_napari.state.urls import resolve_database_url
from opticstream_napari.state.views import NodeView, view_of

log = logging.getLogger(__name__)

Scope = Identity | ProjectKey
_PLURAL = {"slice": "slices", "mosaic": "mosaics", "batch": "batches", "tile": "tiles",
           "channel": "channels", "strip": "strips"}


class StateService:
    """Project state of both modalities in one database; thread-safe, one per process is enough."""

    def __init__(self, database: Database) -> None:
        self.database = database

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        auto_upgrade: bool = False,
        must_exist: bool = False,
        busy_timeout: float = 30.0,
    ) -> StateService:
        """Reach the database and check its schema (creating it in an empty database)."""
        database = Database(url, busy_timeout=busy_timeout)
        try:
            database.check_reachable(must_exist=must_exist)
            ensure_schema(database, auto_upgrade=auto_upgrade)
        except Exception:
            database.dispose()
            raise
        log.debug("state service on %s", database.redacted_url)
        return cls(database)

    @classmethod
    def for_config(
        cls, config: LSMScanConfig | PSOCTScanConfig, url: str | None = None, **kwargs: Any
    ) -> StateService:
        """The database a scan config names (or the environment overrides)."""
        resolved = resolve_database_url(url, config)
        assert resolved is not None, "a config always resolves to a URL"
        return cls.connect(resolved, **kwargs)

    def close(self) -> None:
        self.database.dispose()

    def __enter__(self) -> StateService:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ writing

    @contextmanager
    def update(self, ident: Identity, *, create: bool = True) -> Iterator[NodeHandle]:
        """Lock the node (creating it and its ancestors if missing) for one transaction.

        With ``create=False`` a missing node raises :class:`NodeNotFound` instead. Do not nest
        updates in one thread: each is its own transaction, and on SQLite the inner one would
        wait for the outer one's write lock until the busy timeout.
        """
        level = level_of(ident)
        with self.database.writing() as session:
            events: list[Event] = []
            row = session.get(level.model, primary_key(ident), with_for_update=True)
            if row is None:
                if not create:
                    raise NodeNotFound(f"no such {ident.level}: {ident}")
                self._create_missing(session, [ident], events)
                row = session.get(level.model, primary_key(ident), with_for_update=True)
            handle = NodeHandle(level, ident, row, events)  # type: ignore[arg-type]
            yield handle
            session.flush()
            append_events(session, events)

    @contextmanager
    def update_matching(
        self, project: ProjectKey, level_name: str, **keys: int
    ) -> Iterator[list[NodeHandle]]:
        """Lock every existing node of a level whose key columns equal ``keys`` (key order).

        ``update_matching(p, "batch", slice=1)`` opens every batch of every mosaic of slice 1.
        """
        level = level_named(project.modality, level_name)
        unknown = set(keys) - set(level.keys[1:])
        if unknown:
            raise ValueError(f"{level_name} has no key {', '.join(sorted(unknown))}")
        model: Any = level.model
        with self.database.writing() as session:
            events: list[Event] = []
            rows = session.scalars(
                select(model)
                .where(model.project == project.name,
                       *(getattr(model, k) == v for k, v in keys.items()))
                .order_by(*(getattr(model, k) for k in level.keys)).with_for_update()
            ).all()
            handles = [NodeHandle(level, ident_of_row(level, row), row, events) for row in rows]
            yield handles
            session.flush()
            append_events(session, events)

    def register(self, idents: Iterable[Identity]) -> int:
        """Create every missing node (and ancestor) at once; returns how many were new.

        A watcher registers all tiles of a batch the moment it sees them, so the GUI shows
        them pending before any work starts. Each new node logs a ``pending`` event.
        """
        idents = list(idents)
        with self.database.writing() as session:
            events: list[Event] = []
            self._create_missing(session, idents, events)
            append_events(session, events)
        return len(events)

    def announce(self, ident: Identity, state: str, extra: dict[str, Any] | None = None) -> Event:
        """Log a signal (e.g. ``ready``) about a node, creating the node if needed."""
        with self.update(ident) as node:
            return node.announce(state, extra)

    def remove(self, scope: Scope) -> None:
        """Delete a node with its subtree, or a whole project; logs ``removed`` events."""
        with self.database.writing() as session:
            events: list[Event]
            if isinstance(scope, ProjectKey):
                top = levels_of(scope.modality)[0]
                slices = session.scalars(select(top.model).where(within(top.model, scope))).all()
                project = session.get(PROJECT_MODELS[scope.modality], scope.name)
                if project is None:
                    raise NodeNotFound(f"no {scope.modality} project {scope.name!r}")
                events = [Event.of(ident_of_row(top, row), "removed") for row in slices]
                session.delete(project)
            else:
                level = level_of(scope)
                row = session.get(level.model, primary_key(scope), with_for_update=True)
                if row is None:
                    raise NodeNotFound(f"no such {scope.level}: {scope}")
                events = [Event.of(scope, "removed")]
                session.execute(delete(level.model).where(within(level.model, scope)))
            append_events(session, events)

    # ------------------------------------------------------------------ reading

    def read(self, ident: Identity) -> NodeView | None:
        """The node after any in-flight update of it commits; ``None`` if it does not exist."""
        level = level_of(ident)
        with self.database.writing() as session:
            row = session.get(level.model, primary_key(ident), with_for_update={"read": True})
            return view_of(level, row) if row is not None else None

    def peek(self, ident: Identity) -> NodeView | None:
        """The last committed view, without waiting on locks (check-then-act is racy)."""
        level = level_of(ident)
        with self.database.peeking() as session:
            row = session.get(level.model, primary_key(ident))
            return view_of(level, row) if row is not None else None

    def children(self, scope: Scope) -> list[NodeView]:
        """Direct children in key order (slices of a project, batches of a mosaic …)."""
        level = _child_of(scope)
        if level is None:
            return []
        with self.database.reading() as session:
            return [view_of(level, row) for row in _rows(session, level, scope)]

    def tree(self, scope: Scope, depth: int = 1) -> dict[str, Any]:
        """The scope node and ``depth`` levels below it, as nested JSON-ready dicts."""
        with self.database.reading() as session:
            if isinstance(scope, ProjectKey):
                if session.get(PROJECT_MODELS[scope.modality], scope.name) is None:
                    raise NodeNotFound(f"no {scope.modality} project {scope.name!r}")
                root: dict[str, Any] = {"project": scope.name, "modality": scope.modality}
                parents: dict[tuple[Any, ...], dict[str, Any]] = {(scope.name,): root}
            else:
                level = level_of(scope)
                row = session.get(level.model, primary_key(scope))
                if row is None:
                    raise NodeNotFound(f"no such {scope.level}: {scope}")
                root = view_of(level, row).to_dict()
                parents = {primary_key(scope): root}
            level_below = _child_of(scope)
            for _ in range(depth):
                if level_below is None:
                    break
                nodes: dict[tuple[Any, ...], dict[str, Any]] = {}
                for row in _rows(session, level_below, scope):
                    view = view_of(level_below, row)
                    key = primary_key(view.ident)
                    nodes[key] = view.to_dict()
                    parents[key[:-1]].setdefault(_PLURAL[level_below.name], []).append(nodes[key])
                parents, level_below = nodes, child_level(level_below)
            return root

    def projects(self, modality: str | None = None) -> list[ProjectKey]:
        """Known projects, optionally of one modality, sorted by name."""
        modalities = [modality] if modality else list(MODALITIES)
        with self.database.peeking() as session:
            keys = [
                ProjectKey(m, name)  # type: ignore[arg-type]
                for m in modalities
                for name in session.scalars(select(PROJECT_MODELS[m].name))
            ]
        return sorted(keys, key=lambda k: (k.name, k.modality))

    def events(
        self, project: ProjectKey | None = None, *, after_id: int = 0, limit: int | None = None
    ) -> list[EventRecord]:
        """Logged events in id order (the history; use the change feed to follow live)."""
        with self.database.peeking() as session:
            return read_events(
                session,
                modality=project.modality if project else None,
                project=project.name if project else None,
                after_id=after_id,
                limit=limit,
            )

    # ------------------------------------------------------------------ internals

    def _create_missing(
        self, session: Session, idents: Sequence[Identity], events: list[Event]
    ) -> None:
        now = utcnow()
        projects = {project_of(i) for i in idents}
        nodes: dict[Level, dict[tuple[Any, ...], Identity]] = {}
        for ident in idents:
            for node in lineage(ident):
                nodes.setdefault(level_of(node), {})[primary_key(node)] = node
        for project in sorted(projects, key=str):
            _insert_missing(
                session, PROJECT_MODELS[project.modality].__table__,  # type: ignore[attr-defined]
                [{"name": project.name, "created_at": now}], ("name",),
            )
        for modality in MODALITIES:
            for level in levels_of(modality):
                wanted = nodes.get(level)
                if not wanted:
                    continue
                rows = [_new_row(level, ident, now) for _, ident in sorted(wanted.items())]
                created = _insert_missing(session, level.model.__table__, rows, level.keys)
                events.extend(
                    Event.of(wanted[key], Lifecycle.PENDING.value, {"created": True})
                    for key in sorted(created)
                )


def _child_of(scope: Scope) -> Level | None:
    if isinstance(scope, ProjectKey):
        return levels_of(scope.modality)[0]
    return child_level(level_of(scope))


def _rows(session: Session, level: Level, scope: Scope) -> Sequence[Any]:
    return session.scalars(
        select(level.model).where(within(level.model, scope))
        .order_by(*(getattr(level.model, k) for k in level.keys))
    ).all()


def _new_row(level: Level, ident: Identity, now: Any) -> dict[str, Any]:
    return {
        **ident.to_dict(),
        "state": Lifecycle.PENDING.value,
        "created_at": now,
        "updated_at": now,
        "attempts": 0,
        **dict.fromkeys(level.flags, False),
    }


def _insert_missing(
    session: Session, table: Table, rows: list[dict[str, Any]], keys: Sequence[str]
) -> set[tuple[Any, ...]]:
    """INSERT … ON CONFLICT DO NOTHING; returns the keys that were actually inserted."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(table).on_conflict_do_nothing().returning(*(table.c[k] for k in keys))
    result = session.connection().execute(statement, rows)
    return {tuple(r) for r in result}

