"""Settings kept between sessions in napari's plugin configuration (never a password)."""

from __future__ import annotations

from pathlib import Path

from napari.settings import get_plugin_settings

from opticstream_napari._qt.main_widget import OpticStreamWidget
from opticstream_napari._qt.settings import PLUGIN_NAME, Prefs
from opticstream_napari.cli.simulate_cmd import SimulatedRun
from opticstream_napari.config import load_config

URL = "postgresql://operator:s3cret@dbhost:5432/opticstream_state"


def test_a_database_url_is_saved_without_its_password() -> None:
    Prefs().database_url = URL
    settings = get_plugin_settings(PLUGIN_NAME)
    assert settings.session.database_url == "postgresql://operator@dbhost:5432/opticstream_state"
    assert "s3cret" not in settings.config_path.read_text()


def test_a_new_widget_starts_from_the_saved_settings(
    make_napari_viewer_proxy, tiny_run: SimulatedRun, tmp_path: Path, qtbot
) -> None:
    settings = get_plugin_settings(PLUGIN_NAME)
    settings.session.last_raw_folder = str(tmp_path / "raw")
    settings.session.database_url = "postgresql://operator@dbhost/opticstream_state"
    settings.display.preview_level = 1
    widget = OpticStreamWidget(make_napari_viewer_proxy())
    qtbot.addWidget(widget)
    assert widget.controls.raw_folder() == tmp_path / "raw"
    assert widget.link.preview_level == 1
    widget.config_panel.new()
    assert widget.config_panel.form.database.value() == "postgresql://operator@dbhost/opticstream_state"

    config = load_config(tiny_run.config_path)
    config.database_url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    widget.config_panel.setValue(config)
    assert settings.session.database_url == config.database_url, "the last project's database is the next default"
    qtbot.waitUntil(lambda: widget.link.connected, timeout=5000)
    widget.close()
