"""A private, throwaway PostgreSQL server for tests, benchmarks and trying PostgreSQL locally.

It runs the Debian ``postgresql`` package's binaries in a temporary directory (in memory under
/dev/shm when ``fast``), as the ``postgres`` user when the caller is root (initdb refuses root),
listening on 127.0.0.1 only with trust authentication. Not for production data.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

PG_BIN_ENV = "OPTICSTREAM_PG_BIN"
_FAST = "-c fsync=off -c full_page_writes=off -c synchronous_commit=off"


def find_pg_bin() -> Path:
    """``$OPTICSTREAM_PG_BIN``, else the newest /usr/lib/postgresql/<version>/bin."""
    if os.environ.get(PG_BIN_ENV):
        return Path(os.environ[PG_BIN_ENV])
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parent.parent.name))
    if not found:
        raise FileNotFoundError(
            "PostgreSQL binaries not found under /usr/lib/postgresql/*/bin: install the Debian "
            f"package 'postgresql' (scripts/bootstrap --system does) or set {PG_BIN_ENV}"
        )
    return found[-1].parent


@dataclass(frozen=True, slots=True)
class PostgresServer:
    host: str
    port: int
    version: str

    def url(self, database: str = "postgres", password: str | None = None) -> str:
        user = f"postgres:{password}" if password else "postgres"
        return f"postgresql+psycopg://{user}@{self.host}:{self.port}/{database}"

    def admin(self, sql: str) -> None:
        """Run one statement outside a transaction (CREATE/DROP DATABASE)."""
        with psycopg.connect(host=self.host, port=self.port, user="postgres", dbname="postgres",
                             autocommit=True) as connection:
            connection.execute(sql.encode())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def temporary_postgres(*, fast: bool = True, max_connections: int = 300) -> Iterator[PostgresServer]:
    """Start a server, yield it, then stop it and delete its files.

    ``fast`` turns off fsync and keeps the files in memory: right for tests, wrong for
    benchmarks that should pay for durable commits.
    """
    bin_dir = find_pg_bin()
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    memory = Path("/dev/shm")
    parent = memory if fast and os.access(memory, os.W_OK) else None
    root = Path(tempfile.mkdtemp(prefix="opticstream-pg-", dir=parent))
    if as_postgres:
        shutil.chown(root, "postgres", "postgres")
    data, port = root / "data", _free_port()

    def run(*args: str) -> None:
        subprocess.run([*as_postgres, *args], check=True, capture_output=True, text=True)

    options = (f"-p {port} -k {root} -c listen_addresses=127.0.0.1 "
               f"-c max_connections={max_connections} {_FAST if fast else ''}")
    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
            "-E", "UTF8", *(["--no-sync"] if fast else []))
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-o",
            options, "start")
        version = (data / "PG_VERSION").read_text().strip()
        yield PostgresServer("127.0.0.1", port, version)
    finally:
        subprocess.run([*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(data), "-m",
                        "immediate", "stop"], check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
