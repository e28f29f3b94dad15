"""Shared fixtures: a real PostgreSQL server for the session and a fresh database per test.

The server is a throwaway one from :mod:`opticstream_napari.state.pgserver` (the Debian
``postgresql`` binaries, in memory, fsync off). Each test gets a new database cloned from a
migrated template and dropped afterwards, or a copy of a migrated SQLite file, so tests never
see each other's rows.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from itertools import count
from pathlib import Path

import pytest

from opticstream_napari.engine.vector_width import ENV_VAR, width_in_effect
from opticstream_napari.state.pgserver import PostgresServer, find_pg_bin, temporary_postgres

# Tests compare outputs computed in this process, which has numba's default width (napari's
# pytest plugin compiles numba code first), with outputs of worker processes: those choose the
# same width, as an operator makes every process of a site agree.
os.environ[ENV_VAR] = str(width_in_effect())

_TEMPLATE = "opticstream_template"
_database_numbers = count(1)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        find_pg_bin()
    except FileNotFoundError as error:
        pytest.fail(str(error))
    with temporary_postgres() as server:
        server.admin(f"CREATE DATABASE {_TEMPLATE}")
        _migrate(server.url(_TEMPLATE))
        yield server


def _migrate(url: str) -> None:
    from opticstream_napari.state.database import Database
    from opticstream_napari.state.schema import upgrade

    database = Database(url)
    try:
        upgrade(database)
    finally:
        database.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "state.db"
    _migrate(f"sqlite:///{path}")
    return path


BACKENDS = [pytest.param("sqlite", id="sqlite"),
            pytest.param("postgres", id="postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _fresh_postgres(request: pytest.FixtureRequest, template: str) -> Iterator[str]:
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = f"test_{os.getpid()}_{next(_database_numbers)}"
    server.admin(f"CREATE DATABASE {name} TEMPLATE {template}")
    yield server.url(name)
    server.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database with the current schema and no rows, on each backend."""
    if backend == "sqlite":
        target = tmp_path / "state.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), target)
        yield f"sqlite:///{target}"
    else:
        yield from _fresh_postgres(request, _TEMPLATE)


@pytest.fixture
def blank_database_url(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[str]:
    """A fresh database without any schema (a SQLite path that does not exist yet)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'blank.db'}"
    else:
        yield from _fresh_postgres(request, "template0")
