"""One state database: the engine, each backend's locking quirks, and the three session kinds.

- ``writing()``: a transaction that may change rows. SQLite starts it with ``BEGIN IMMEDIATE``
  so writers queue on the busy timeout instead of failing half-way; PostgreSQL uses row locks.
- ``reading()``: a snapshot for several consistent reads (``REPEATABLE READ`` on PostgreSQL,
  a deferred transaction in WAL mode on SQLite), never blocking writers.
- ``peeking()``: one cheap autocommit read.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session

from opticstream_napari.state.errors import DatabaseMissing, DatabaseUnreachable
from opticstream_napari.state.urls import DATABASE_URL_ENV, normalize_url, redact_url, scrub_secrets

log = logging.getLogger(__name__)
T = TypeVar("T")

_SQLITE_BEGIN = "opticstream_sqlite_begin"
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01"})  # serialization failure, deadlock


class Database:
    """A state database reached through one pooled engine; safe to share between threads."""

    def __init__(self, url: str, *, busy_timeout: float = 30.0, connect_timeout: int = 5) -> None:
        self._url: URL = make_url(normalize_url(url))
        self.redacted_url = redact_url(self._url)
        self.is_sqlite = self._url.get_backend_name() == "sqlite"
        if self.is_sqlite:
            self.engine = _sqlite_engine(self._url, busy_timeout)
            self._reader = self.engine.execution_options(**{_SQLITE_BEGIN: "DEFERRED"})
            self._peeker = self._reader
        else:
            self.engine = create_engine(
                self._url, pool_pre_ping=True, connect_args={"connect_timeout": connect_timeout}
            )
            self._reader = self.engine.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
            self._peeker = self.engine.execution_options(isolation_level="AUTOCOMMIT")

    def __repr__(self) -> str:
        return f"Database({self.redacted_url})"

    @property
    def sqlite_path(self) -> Path | None:
        return Path(self._url.database) if self.is_sqlite and self._url.database else None

    def psycopg_connect_kwargs(self) -> dict[str, Any]:
        """Arguments for a dedicated psycopg connection (the change feed's LISTEN)."""
        kwargs: dict[str, Any] = self._url.translate_connect_args(
            username="user", database="dbname"
        )
        kwargs.update(self._url.query)
        return kwargs

    @contextmanager
    def writing(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        with Session(self._reader, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def peeking(self) -> Iterator[Session]:
        with Session(self._peeker, expire_on_commit=False) as session:
            yield session

    def retrying(self, work: Callable[[], T], attempts: int = 8) -> T:
        """Run ``work`` (one whole transaction) again after a deadlock or lock timeout."""
        for attempt in range(1, attempts + 1):
            try:
                return work()
            except DBAPIError as error:
                if attempt == attempts or not self._transient(error):
                    raise
                log.info("transient conflict on %s, retrying (%s)", self.redacted_url, attempt)
                time.sleep(0.01 * 2**attempt)
        raise AssertionError("unreachable")

    def _transient(self, error: DBAPIError) -> bool:
        if self.is_sqlite:
            return "locked" in str(error.orig) or "busy" in str(error.orig)
        return getattr(error.orig, "sqlstate", None) in _TRANSIENT_SQLSTATES

    def check_reachable(self, *, must_exist: bool = False) -> None:
        """Open one connection, turning driver noise into a message an operator can act on."""
        path = self.sqlite_path
        if path is not None:
            if must_exist and not path.exists():
                raise DatabaseMissing(
                    f"no state database at {self.redacted_url}: the file does not exist. "
                    "Check --database-url / --config, or run `opticstream db upgrade` to create it."
                )
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise DatabaseUnreachable(
                    f"cannot reach the state database at {self.redacted_url}: cannot create "
                    f"its folder ({error.strerror}). Check the path in --database-url / --config."
                ) from None
        try:
            with self.engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
        except (OperationalError, DBAPIError) as error:
            reason = scrub_secrets(str(error.orig).strip().splitlines()[0], self._url)
            raise DatabaseUnreachable(
                f"cannot reach the state database at {self.redacted_url}: {reason}. "
                "Check that the server is running and accepts connections, and that the URL "
                f"(--database-url, {DATABASE_URL_ENV} or database_url in the scan config) "
                "is right."
            ) from None

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_engine(url: URL, busy_timeout: float) -> Engine:
    engine = create_engine(
        url,
        connect_args={"timeout": busy_timeout, "check_same_thread": False, "isolation_level": None},
    )

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        mode = connection.get_execution_options().get(_SQLITE_BEGIN, "IMMEDIATE")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine
