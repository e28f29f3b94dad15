from pathlib import Path

import pytest
import yaml

from opticstream_napari._qt.main_widget import OpticStreamWidget
from opticstream_napari.config import PSOCTScanConfig, load_config, save_config
from opticstream_napari.viewer_link.layer_specs import role_placeholders


@pytest.fixture
def scan_file(tmp_path: Path) -> Path:
    config = PSOCTScanConfig(
        project_name="sub-demo",
        project_base_path=tmp_path / "project",
        acquisition={"grid_size_x_normal": 2, "grid_size_x_tilted": 2, "grid_size_y": 3},
    )
    return save_config(config, tmp_path / "scan.yaml")


@pytest.fixture
def widget(make_napari_viewer_proxy) -> OpticStreamWidget:
    viewer = make_napari_viewer_proxy()
    widget = OpticStreamWidget(viewer)
    viewer.window.add_dock_widget(widget, name="OpticStream")
    return widget


def test_plugin_contributes_the_dock_widget(make_napari_viewer) -> None:
    viewer = make_napari_viewer()
    _dock, widget = viewer.window.add_plugin_dock_widget("opticstream-napari", "OpticStream")
    assert isinstance(widget, OpticStreamWidget)
    assert any("OpticStream" in name for name in viewer.window.dock_widgets)


def test_load_shows_the_config(widget: OpticStreamWidget, scan_file: Path, qtbot) -> None:
    with qtbot.waitSignal(widget.config_panel.valueChanged, timeout=2000):
        assert widget.config_panel.load(scan_file)
    assert widget.config_panel.value().project_name == "sub-demo"
    assert "sub-demo" in widget.status_label.text()
    assert widget.config_panel.save_button.isEnabled()


def test_loading_a_project_makes_its_layers_before_any_start(
    widget: OpticStreamWidget, scan_file: Path, qtbot
) -> None:
    """The roles' layers (0.1-0.7 s of GUI thread each) are made while the project opens, so
    Start and the tiles that follow only swap data into them."""
    assert widget.config_panel.load(scan_file)
    assert widget.link.making_layers
    roles = {spec.key for spec in role_placeholders(load_config(scan_file))}
    qtbot.waitUntil(lambda: set(widget.link.layers) == roles and not widget.link.busy, timeout=30000)
    assert not widget.link.making_layers
    assert not widget.link.running
    assert all(layer.name.endswith("waiting for data") for layer in widget.link.layers.values())


def test_bad_config_shows_the_error_and_keeps_the_file(
    widget: OpticStreamWidget, scan_file: Path, tmp_path: Path
) -> None:
    widget.config_panel.load(scan_file)
    bad = tmp_path / "bad.yaml"
    bad.write_text("modality: psoct\nproject_name: p\nproject_base_path: /p\nacquisition: {grid_size_y: 0}\n")
    assert not widget.config_panel.load(bad)
    assert "grid_size_y" in widget.config_panel.error_label.text()
    assert widget.config_panel.value().project_name == "sub-demo"
    assert not widget.config_panel.save(bad)
    assert "refusing to overwrite" in widget.config_panel.error_label.text()
    assert "grid_size_y: 0" in bad.read_text()


def test_save_writes_a_loadable_file(widget: OpticStreamWidget, scan_file: Path, tmp_path: Path) -> None:
    widget.config_panel.load(scan_file)
    target = tmp_path / "copy.yaml"
    assert widget.config_panel.save(target)
    assert load_config(target) == load_config(scan_file)
    assert yaml.safe_load(target.read_text())["project_name"] == "sub-demo"
