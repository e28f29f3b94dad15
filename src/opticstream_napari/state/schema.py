"""Schema versions: Alembic migrations shipped in the package and applied programmatically.

A fresh database is brought to the newest revision on first use. A database on an older
revision is left alone (other processes may still run the old code) and gets a message saying
to run ``opticstream db upgrade``; one on a newer revision asks for newer code.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text

from opticstream_napari.state.database import Database
from opticstream_napari.state.errors import SchemaMismatch

log = logging.getLogger(__name__)
# Alembic narrates every step at INFO; this module reports the outcome itself.
logging.getLogger("alembic").setLevel(logging.WARNING)

MIGRATIONS = Path(__file__).with_name("migrations")
_MIGRATION_LOCK = 0x6F7073  # PostgreSQL advisory-lock key that serialises migrators


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@cache
def _scripts() -> ScriptDirectory:
    """The shipped migrations; read once, since they cannot change while the code runs."""
    return ScriptDirectory.from_config(_config())


def head_revision() -> str:
    head = _scripts().get_current_head()
    assert head is not None, "the package ships at least one migration"
    return head


def known_revisions() -> frozenset[str]:
    return frozenset(s.revision for s in _scripts().walk_revisions())


def current_revision(database: Database) -> str | None:
    with database.engine.connect() as connection:
        return _revision(connection)


def upgrade(database: Database, revision: str = "head") -> str | None:
    """Migrate to ``revision``; concurrent callers queue, and each re-reads the version first."""
    with _migration_lock(database) as connection:
        after = _upgrade(connection, revision)
    log.info("state database %s is at revision %s", database.redacted_url, after)
    return after


def downgrade(database: Database, revision: str) -> None:
    with _migration_lock(database) as connection:
        command.downgrade(_config(connection), revision)


def ensure_schema(database: Database, *, auto_upgrade: bool = False) -> None:
    """Create the schema in an empty database; refuse an older or newer one with a remedy."""
    head = head_revision()
    if current_revision(database) == head:
        return
    with _migration_lock(database) as connection:
        current = _revision(connection)
        if current == head:
            return
        if current is None and not _has_state_tables(connection):
            _upgrade(connection, "head")
            log.info("created the state schema in %s", database.redacted_url)
            return
        where = database.redacted_url
        if current is not None and current not in known_revisions():
            raise SchemaMismatch(
                f"the state database at {where} has schema revision {current}, which is newer "
                f"than this version of opticstream-napari understands (newest known: {head}). "
                "Upgrade opticstream-napari on this machine; do not downgrade the database.",
                current=current, expected=head,
            )
        if not auto_upgrade:
            raise SchemaMismatch(
                f"the state database at {where} has schema revision "
                f"{current or 'none (unversioned)'}, older than this code needs ({head}). Stop "
                "the other opticstream processes that use it, then run "
                f"`opticstream db upgrade --database-url '{where}'` (with the real password).",
                current=current, expected=head,
            )
        _upgrade(connection, "head")
        log.info("upgraded the state schema in %s from %s to %s", where, current, head)


@contextmanager
def _migration_lock(database: Database) -> Iterator[Connection]:
    """A transaction no other migrator can share: SQLite's BEGIN IMMEDIATE already excludes
    other writers; PostgreSQL takes a transaction-scoped advisory lock."""
    with database.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK}
            )
        yield connection


def _revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _upgrade(connection: Connection, revision: str) -> str | None:
    command.upgrade(_config(connection), revision)
    return _revision(connection)


def _has_state_tables(connection: Connection) -> bool:
    return bool({"psoct_project", "lsm_project"} & set(inspect(connection).get_table_names()))
