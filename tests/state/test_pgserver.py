"""The throwaway PostgreSQL server helper used by the suite and the benchmark."""

from __future__ import annotations

from pathlib import Path

import pytest

from opticstream_napari.state.pgserver import PG_BIN_ENV, PostgresServer, find_pg_bin


def test_the_binaries_folder_can_be_chosen(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    monkeypatch.setenv(PG_BIN_ENV, str(tmp_path))
    assert find_pg_bin() == tmp_path


def test_urls_of_the_server() -> None:
    server = PostgresServer("127.0.0.1", 5999, "15")
    assert server.url() == "postgresql+psycopg://postgres@127.0.0.1:5999/postgres"
    assert server.url("db", password="pw") == "postgresql+psycopg://postgres:pw@127.0.0.1:5999/db"


@pytest.mark.postgres
def test_the_session_server_runs(postgres_server: PostgresServer) -> None:
    assert postgres_server.version.split(".")[0].isdigit()
    postgres_server.admin("SELECT 1")
