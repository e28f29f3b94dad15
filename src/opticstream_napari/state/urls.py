"""Database URLs: where they come from, their canonical driver, and their printable form.

Every URL that reaches a log line, an exception or the GUI goes through :func:`redact_url`,
so a password written into a scan config or the environment is never shown.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from opticstream_napari.config import LSMScanConfig, PSOCTScanConfig

DATABASE_URL_ENV = "OPTICSTREAM_DATABASE_URL"
SQLITE_FILE_NAME = "state.db"
_MASK = "***"
_SECRET_QUERY_KEYS = frozenset({"password", "passwd", "sslpassword"})
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^:/@]*):[^@/]*@")
_QUERY_SECRET = re.compile(r"(?i)\b(password|passwd|sslpassword)=[^&\s]*")


def redact_url(url: str | URL) -> str:
    """The URL with its password (in the user part or the query) replaced by ``***``."""
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
        text = parsed.render_as_string(hide_password=True)
    except ArgumentError:
        text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{_MASK}@", str(url))
    return _QUERY_SECRET.sub(lambda m: f"{m.group(1)}={_MASK}", text)


def scrub_secrets(text: str, url: str | URL) -> str:
    """Remove the URL's password from free text such as a driver's error message."""
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
    except ArgumentError:
        return text
    secrets = [parsed.password, *(
        v for k, v in parsed.query.items() if k.lower() in _SECRET_QUERY_KEYS and isinstance(v, str)
    )]
    for secret in secrets:
        if secret:
            text = text.replace(str(secret), _MASK)
    return text.replace(str(url), redact_url(url))


def normalize_url(url: str) -> str:
    """Canonical SQLAlchemy URL: PostgreSQL goes through psycopg 3, bare paths become SQLite."""
    if "://" not in url:
        return sqlite_url(Path(url))
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.expanduser().resolve()}"


def default_sqlite_url(config: LSMScanConfig | PSOCTScanConfig) -> str:
    """The embedded default: a SQLite file in the project's working tree."""
    return sqlite_url(Path(config.project_base_path) / SQLITE_FILE_NAME)


def resolve_database_url(
    explicit: str | None = None,
    config: LSMScanConfig | PSOCTScanConfig | None = None,
    environ: Mapping[str, str] | None = None,
) -> str | None:
    """First of: an explicit URL, ``OPTICSTREAM_DATABASE_URL``, the config's URL, its SQLite file.

    The environment outranks the config so an operator can point every process of a site at
    one server without editing each project's YAML.
    """
    env = os.environ if environ is None else environ
    for candidate in (explicit, env.get(DATABASE_URL_ENV)):
        if candidate:
            return normalize_url(candidate)
    if config is None:
        return None
    if config.database_url:
        return normalize_url(config.database_url)
    return default_sqlite_url(config)
