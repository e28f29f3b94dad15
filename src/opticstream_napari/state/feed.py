"""Change feed: new events as they commit, for the GUI and the engine, without polling the tree.

Both backends tail the event log; they differ in how the tail learns there is something new
and how it stays gap-free:

- PostgreSQL: a trigger sends ``NOTIFY opticstream_events`` per writing transaction, which
  wakes the feed. Ids are assigned before commit, so a plain ``id > last`` tail could skip a
  slow transaction's event; instead each event carries its transaction id, and the feed takes
  only events of transactions older than every still-running one (``pg_snapshot_xmin``).
- SQLite: writers are serialised, so ids are in commit order; the feed polls ``id > last``.

The wait between checks is at most ``poll_interval`` on both, so a missed notification only
delays an event, never loses it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
from sqlalchemy import func, select, text

from opticstream_napari.state.eventlog import RECORD_COLUMNS, EventRecord, read_events, record_of
from opticstream_napari.state.hierarchy import ProjectKey
from opticstream_napari.state.models import EventLog
from opticstream_napari.state.service import StateService

log = logging.getLogger(__name__)

CHANNEL = "opticstream_events"
_LOG: Any = EventLog.__table__  # type: ignore[attr-defined]
_XMIN = text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")


class ChangeFeed:
    """Pull new events with :meth:`poll` or iterate; one thread at a time per feed.

    ``from_start`` replays the whole log first; otherwise only events committed from now on
    (and, on PostgreSQL, those of transactions still running when the feed opened).
    """

    def __init__(
        self,
        state: StateService,
        *,
        project: ProjectKey | None = None,
        from_start: bool = False,
        poll_interval: float = 0.25,
    ) -> None:
        self._database = state.database
        self._project = project
        self._poll_interval = poll_interval
        self._closed = threading.Event()
        self._listener: psycopg.Connection[Any] | None = None
        self._after_id = 0
        self._low_txid = 0
        if self._database.is_sqlite:
            if not from_start:
                with self._database.peeking() as session:
                    self._after_id = session.scalar(select(func.max(_LOG.c.id))) or 0
        else:
            self._listener = psycopg.connect(
                **self._database.psycopg_connect_kwargs(), autocommit=True
            )
            self._listener.execute(f"LISTEN {CHANNEL}")
            if not from_start:
                with self._database.peeking() as session:
                    self._low_txid = session.scalar(_XMIN) or 0

    @property
    def poll_interval(self) -> float:
        return self._poll_interval

    def poll(self, timeout: float = 0.0) -> list[EventRecord]:
        """New events in commit order, waiting up to ``timeout`` seconds for the first."""
        deadline = time.monotonic() + timeout
        while True:
            records = self._fetch()
            remaining = deadline - time.monotonic()
            if records or remaining <= 0 or self._closed.is_set():
                return records
            self._wait(min(remaining, self._poll_interval))

    def __iter__(self) -> Iterator[EventRecord]:
        """Every new event, blocking between them, until :meth:`close`."""
        while not self._closed.is_set():
            yield from self.poll(self._poll_interval)

    def close(self) -> None:
        self._closed.set()
        if self._listener is not None:
            self._listener.close()

    def __enter__(self) -> ChangeFeed:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def subscribe(self, callback: Callable[[list[EventRecord]], None]) -> Subscription:
        """Deliver batches of new events to ``callback`` from a background thread."""
        return Subscription(self, callback)

    def _fetch(self) -> list[EventRecord]:
        with self._database.peeking() as session:
            if self._database.is_sqlite:
                records = read_events(
                    session,
                    modality=self._project.modality if self._project else None,
                    project=self._project.name if self._project else None,
                    after_id=self._after_id,
                )
                if records:
                    self._after_id = records[-1].id
                return records
            horizon = session.scalar(_XMIN)
            query = (
                select(*RECORD_COLUMNS)
                .where(_LOG.c.txid >= self._low_txid, _LOG.c.txid < horizon)
                .order_by(_LOG.c.txid, _LOG.c.id)
            )
            if self._project is not None:
                query = query.where(
                    _LOG.c.modality == self._project.modality, _LOG.c.project == self._project.name
                )
            records = [record_of(row) for row in session.connection().execute(query)]
            self._low_txid = horizon
            return records

    def _wait(self, seconds: float) -> None:
        if self._listener is None:
            self._closed.wait(seconds)
            return
        for _ in self._listener.notifies(timeout=seconds, stop_after=1):
            pass


class Subscription:
    """A daemon thread feeding a callback; a failing callback is logged and the feed goes on."""

    def __init__(self, feed: ChangeFeed, callback: Callable[[list[EventRecord]], None]) -> None:
        self._feed = feed
        self._callback = callback
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="opticstream-feed", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                records = self._feed.poll(self._feed.poll_interval)
                if records:
                    try:
                        self._callback(records)
                    except Exception:
                        log.exception("change-feed callback failed")
        finally:
            self._feed.close()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop delivering and close the feed (returns within about one poll interval)."""
        self._stop.set()
        self._thread.join(timeout)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
