"""Schema versions and connection errors: created on first use, refused when older or newer,
and every message names the database without its password and says what to do."""

from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlmodel import SQLModel

from opticstream_napari.identity import PSOCTTileId
from opticstream_napari.state import schema
from opticstream_napari.state.database import Database
from opticstream_napari.state.errors import DatabaseMissing, DatabaseUnreachable, SchemaMismatch
from opticstream_napari.state.hierarchy import primary_key
from opticstream_napari.state.models import PSOCTTile
from opticstream_napari.state.service import StateService


def _with_password(url: str) -> str:
    """The same database, reached with a password in the URL (trust auth ignores it)."""
    return url.replace("postgres@", "postgres:s3cret@") if url.startswith("postgresql") else url


def test_first_use_creates_the_schema(blank_database_url: str) -> None:
    with StateService.connect(blank_database_url) as state:
        with state.update(PSOCTTileId("p", 1, 1, 1, 1)) as node:
            node.mark_started()
        assert schema.current_revision(state.database) == schema.head_revision()
    with StateService.connect(blank_database_url, must_exist=True) as state:
        assert state.peek(PSOCTTileId("p", 1, 1, 1, 1)) is not None


def test_concurrent_first_use_is_serialised(blank_database_url: str) -> None:
    errors: list[BaseException] = []

    def open_and_close() -> None:
        try:
            StateService.connect(blank_database_url).close()
        except BaseException as error:  # noqa: BLE001 (collected and asserted below)
            errors.append(error)

    threads = [threading.Thread(target=open_and_close) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_an_older_schema_is_refused_with_the_remedy(blank_database_url: str) -> None:
    url = _with_password(blank_database_url)
    database = Database(url)
    schema.upgrade(database, "0001")
    with pytest.raises(SchemaMismatch) as caught:
        StateService.connect(url)
    message = str(caught.value)
    assert "revision 0001" in message and schema.head_revision() in message
    assert "opticstream db upgrade" in message and database.redacted_url in message
    assert "s3cret" not in message
    with StateService.connect(url, auto_upgrade=True) as state:
        assert schema.current_revision(state.database) == schema.head_revision()
    database.dispose()


def test_a_newer_schema_is_refused(database_url: str) -> None:
    database = Database(database_url)
    with database.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(SchemaMismatch, match="newer than this version") as caught:
        StateService.connect(database_url)
    assert caught.value.current == "9999" and caught.value.expected == schema.head_revision()
    database.dispose()


def test_an_unversioned_schema_is_refused(database_url: str) -> None:
    database = Database(database_url)
    with database.engine.begin() as connection:
        connection.execute(text("DELETE FROM alembic_version"))
    with pytest.raises(SchemaMismatch, match="unversioned"):
        StateService.connect(database_url)
    database.dispose()


def test_migrations_match_the_models(database_url: str) -> None:
    database = Database(database_url)
    with database.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), SQLModel.metadata) == []
    schema.downgrade(database, "base")
    assert schema.current_revision(database) is None
    assert schema.upgrade(database) == schema.head_revision()
    database.dispose()


def test_an_unreachable_server_names_the_redacted_url() -> None:
    url = "postgresql://ops:s3cret@127.0.0.1:9/state"
    with pytest.raises(DatabaseUnreachable) as caught:
        StateService.connect(url)
    message = str(caught.value)
    assert "postgresql+psycopg://ops:***@127.0.0.1:9/state" in message
    assert "s3cret" not in message and "server is running" in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_an_unopenable_sqlite_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(DatabaseUnreachable, match="cannot reach the state database"):
        StateService.connect(f"sqlite:///{tmp_path / 'file' / 'state.db'}")
    with pytest.raises(DatabaseMissing, match="does not exist"):
        StateService.connect(f"sqlite:///{tmp_path / 'missing.db'}", must_exist=True)
    assert not (tmp_path / "missing.db").exists()


def test_passwords_stay_out_of_logs_and_reprs(blank_database_url: str,
                                              caplog: pytest.LogCaptureFixture) -> None:
    url = _with_password(blank_database_url)
    caplog.set_level(logging.DEBUG, logger="opticstream_napari")
    with StateService.connect(url) as state:
        with state.update(PSOCTTileId("p", 1, 1, 1, 1)) as node:
            node.mark_started()
        assert "s3cret" not in repr(state.database)
        shown = state.database.redacted_url
    assert f"created the state schema in {shown}" in caplog.text
    assert "s3cret" not in caplog.text


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_locked_sqlite_database_is_retried(database_url: str) -> None:
    url = database_url
    holder, quick = Database(url), Database(url, busy_timeout=0.05)
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with holder.writing() as session:
            session.execute(text("SELECT 1"))
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    assert holding.wait(10)
    with pytest.raises(OperationalError, match="locked"), quick.writing() as session:
        session.execute(text("SELECT 1"))
    threading.Timer(0.3, release.set).start()

    def write() -> int:
        with quick.writing() as session:
            return int(session.execute(text("SELECT 1")).scalar_one())

    assert quick.retrying(write) == 1
    thread.join()
    holder.dispose()
    quick.dispose()


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_deadlock_is_retried(state: StateService) -> None:
    tiles = [PSOCTTileId("p", 1, 1, 1, t) for t in (1, 2)]
    state.register(tiles)
    both_hold_one = threading.Barrier(2, timeout=5)
    attempts = [0, 0]

    def lock_both(me: int) -> None:
        def transaction() -> None:
            attempts[me] += 1
            with state.database.writing() as session:
                first = session.get(PSOCTTile, primary_key(tiles[me]), with_for_update=True)
                assert first is not None
                first.attempts += 1
                session.flush()
                if attempts[me] == 1:
                    with contextlib.suppress(threading.BrokenBarrierError):
                        both_hold_one.wait()
                session.get(PSOCTTile, primary_key(tiles[1 - me]), with_for_update=True)

        state.database.retrying(transaction)

    threads = [threading.Thread(target=lock_both, args=(me,)) for me in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(attempts) == [1, 2]
    assert [v.attempts for v in map(state.peek, tiles) if v] == [1, 1]
