"""Database URLs: canonical drivers, precedence of sources, and passwords never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from opticstream_napari.config import LSMScanConfig, PSOCTAcquisitionParams, PSOCTScanConfig
from opticstream_napari.state.urls import (
    DATABASE_URL_ENV,
    normalize_url,
    redact_url,
    resolve_database_url,
    scrub_secrets,
)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://ops:s3cret@db.lab:5432/state",
         "postgresql+psycopg://ops:***@db.lab:5432/state"),
        ("postgresql://ops@db.lab/state?password=s3cret&sslmode=require",
         "postgresql://ops@db.lab/state?password=***&sslmode=require"),
        ("sqlite:////data/p/state.db", "sqlite:////data/p/state.db"),
        ("not a url but user:s3cret@host", "not a url but user:s3cret@host"),
        ("weird+scheme://ops:s3cret@host/x?passwd=s3cret", "weird+scheme://ops:***@host/x?passwd=***"),
    ],
)
def test_redact_url_hides_passwords(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_url_of_unparseable_text_masks_userinfo() -> None:
    assert redact_url("::postgres://ops:s3cret@h/x") == "::postgres://ops:***@h/x"


def test_scrub_secrets_removes_the_password_from_driver_text() -> None:
    url = "postgresql+psycopg://ops:s3cret@db/state"
    text = scrub_secrets(f'password s3cret rejected for {url}', url)
    assert "s3cret" not in text
    assert "***" in text


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgres://u:pw@h/db", "postgresql+psycopg://u:pw@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_normalize_url_uses_psycopg3(url: str, canonical: str) -> None:
    assert normalize_url(url) == canonical


def test_a_bare_path_is_a_sqlite_file(tmp_path: Path) -> None:
    assert normalize_url(str(tmp_path / "s.db")) == f"sqlite:///{tmp_path / 's.db'}"


def _psoct(base: Path, url: str | None = None) -> PSOCTScanConfig:
    return PSOCTScanConfig(
        project_name="p", project_base_path=base, database_url=url,
        acquisition=PSOCTAcquisitionParams(grid_size_x_normal=2, grid_size_x_tilted=2,
                                           grid_size_y=3),
    )


def test_resolution_order(tmp_path: Path) -> None:
    env = {DATABASE_URL_ENV: "postgresql://env@h/db"}
    config = _psoct(tmp_path, "postgresql://config@h/db")
    assert resolve_database_url("postgresql://cli@h/db", config, env) == (
        "postgresql+psycopg://cli@h/db"
    )
    assert resolve_database_url(None, config, env) == "postgresql+psycopg://env@h/db"
    assert resolve_database_url(None, config, {}) == "postgresql+psycopg://config@h/db"
    assert resolve_database_url(None, None, {}) is None


def test_a_config_without_url_uses_sqlite_in_the_project(tmp_path: Path) -> None:
    lsm = LSMScanConfig(project_name="p", project_base_path=tmp_path)
    assert resolve_database_url(None, lsm, {}) == f"sqlite:///{tmp_path / 'state.db'}"
    assert resolve_database_url(None, _psoct(tmp_path), {}).endswith("/state.db")
