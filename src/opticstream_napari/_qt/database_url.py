"""The state database URL, edited without ever showing its password.

The URL box shows the redacted form (``user:***@host``); the password lives in a masked box
beside it. A URL pasted with its password is split into the two when editing finishes, and a
``***`` left in the URL means "keep the password in the box".
"""

from __future__ import annotations

from qtpy.QtCore import Signal
from qtpy.QtWidgets import QHBoxLayout, QLineEdit, QWidget
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from opticstream_napari.viewer_link import redact_url

MASK = "***"


def split_password(url: str) -> tuple[str, str]:
    """``(redacted URL, password)``; text that is not a URL comes back unchanged with no password."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return url, ""
    return redact_url(parsed), parsed.password or ""


def with_password(url: str, password: str) -> str:
    """The URL with ``password`` in place of ``***`` (or of none); a literal password in ``url`` wins."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return url
    if parsed.password is None and not password:
        return url
    if parsed.password in (None, MASK):
        parsed = _set_password(parsed, password or None)
    return parsed.render_as_string(hide_password=False)


def without_password(url: str) -> str:
    """The URL with no password at all, fit for settings files (libpq falls back to ``~/.pgpass``)."""
    try:
        return _set_password(make_url(url), None).render_as_string(hide_password=False)
    except ArgumentError:
        return url


def _set_password(url: URL, password: str | None) -> URL:
    """``url`` with ``password`` (``URL.set`` cannot remove one: there ``None`` means "unchanged")."""
    return URL.create(url.drivername, url.username, password, url.host, url.port, url.database, url.query)


class DatabaseUrlField(QWidget):
    """``value()`` is the full URL (or ``None`` for the project's SQLite file); it is never displayed."""

    valueChanged = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.url_edit = QLineEdit()
        self.url_edit.setPlaceholderText("SQLite file in the project folder")
        self.url_edit.setToolTip(
            "State database, e.g. postgresql://user@host/opticstream_state; empty: <project folder>/state.db"
        )
        self.password_edit = QLineEdit()
        self.password_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.password_edit.setPlaceholderText("password")
        self.password_edit.setMaximumWidth(110)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.url_edit, 1)
        layout.addWidget(self.password_edit)
        self.url_edit.textChanged.connect(self._on_text)
        self.url_edit.editingFinished.connect(self._tidy)
        self.password_edit.textChanged.connect(self.valueChanged)
        self._on_text()

    def value(self) -> str | None:
        text = self.url_edit.text().strip()
        return with_password(text, self.password_edit.text()) if text else None

    def setValue(self, url: str | None) -> None:
        shown, password = split_password(url) if url else ("", "")
        self.password_edit.setText(password)
        self.url_edit.setText(shown)

    def _on_text(self) -> None:
        self.password_edit.setEnabled(not self.url_edit.text().strip().startswith("sqlite"))
        self.valueChanged.emit()

    def _tidy(self) -> None:
        """Move a password typed into the URL into the masked box."""
        text = self.url_edit.text().strip()
        _, password = split_password(text)
        if password and password != MASK:
            self.setValue(with_password(text, password))
