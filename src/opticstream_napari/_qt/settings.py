"""Settings kept between sessions, in napari's plugin configuration (``configurations`` in napari.yaml).

napari saves them to ``<napari config dir>/opticstream-napari.yaml`` on every change and shows
them under Preferences. Outside napari (no plugin manager entry) the defaults apply and
nothing is saved.
"""

from __future__ import annotations

from typing import Any

from opticstream_napari._qt.database_url import without_password

PLUGIN_NAME = "opticstream-napari"


def plugin_settings() -> Any | None:
    """The plugin's settings model, or ``None`` when napari does not know the plugin."""
    from napari.settings import get_plugin_settings

    try:
        return get_plugin_settings(PLUGIN_NAME)
    except KeyError:
        return None


class Prefs:
    """Typed access to the three settings; writing a database URL drops its password first."""

    def __init__(self, settings: Any | None = None) -> None:
        self._settings = settings if settings is not None else plugin_settings()

    @property
    def database_url(self) -> str | None:
        return (self._settings.session.database_url or None) if self._settings else None

    @database_url.setter
    def database_url(self, url: str | None) -> None:
        if self._settings:
            self._settings.session.database_url = without_password(url) if url else ""

    @property
    def raw_folder(self) -> str | None:
        return (self._settings.session.last_raw_folder or None) if self._settings else None

    @raw_folder.setter
    def raw_folder(self, folder: str | None) -> None:
        if self._settings:
            self._settings.session.last_raw_folder = folder or ""

    @property
    def preview_level(self) -> int:
        return int(self._settings.display.preview_level) if self._settings else 0
