"""The scan-config form: round trip of the pydantic model, messages beside fields, a hidden password."""

from __future__ import annotations

from pathlib import Path

import pytest
from qtpy.QtWidgets import QLineEdit

from opticstream_napari._qt.config_panel import ConfigPanel
from opticstream_napari.config import LSMScanConfig, PSOCTScanConfig, load_config
from opticstream_napari.simulate.psoct import psoct_preset

URL = "postgresql://operator:s3cret@dbhost:5432/opticstream_state"


@pytest.fixture
def config(tmp_path: Path) -> PSOCTScanConfig:
    config = psoct_preset(tmp_path / "project", "tiny")
    config.processing.enface_depth = 42
    config.mask_threshold_tilted = 57.25
    return config


@pytest.fixture
def panel(qtbot) -> ConfigPanel:
    panel = ConfigPanel()
    qtbot.addWidget(panel)
    return panel


def test_the_form_round_trips_the_model(panel: ConfigPanel, config: PSOCTScanConfig, tmp_path: Path, qtbot) -> None:
    with qtbot.waitSignal(panel.configApplied, timeout=1000):
        panel.setValue(config)
    assert panel.value() == config, "fields without an editor (processing) survive"
    assert panel.form.editors["mask_threshold_tilted"].text() == "57.25"
    assert panel.save(tmp_path / "scan.yaml") and load_config(tmp_path / "scan.yaml") == config


def test_messages_appear_beside_the_field_and_saving_waits_for_a_fix(
    panel: ConfigPanel, config: PSOCTScanConfig, tmp_path: Path, qtbot
) -> None:
    panel.setValue(config)
    rows = panel.form.editors["acquisition.grid_size_y"]
    rows.setText("0")
    assert panel.form.field_errors() == {"acquisition.grid_size_y": "Input should be greater than or equal to 1"}
    assert panel.value() is None and not panel.save_button.isEnabled()
    panel.form.editors["mask_threshold_normal"].setText("sixty")
    assert "valid number" in panel.form.field_errors()["mask_threshold_normal"]
    panel.form.editors["mask_threshold_normal"].setText("61.5")
    with qtbot.waitSignal(panel.valueChanged, timeout=1000) as changed:
        rows.setText("4")
    assert changed.args[0].acquisition.grid_size_y == 4 and changed.args[0].mask_threshold_normal == 61.5
    assert panel.form.field_errors() == {} and panel.save_button.isEnabled()
    assert panel.save(tmp_path / "edited.yaml")
    assert load_config(tmp_path / "edited.yaml").acquisition.grid_size_y == 4


def test_a_new_config_says_what_is_required_and_the_modality_can_change(panel: ConfigPanel, tmp_path: Path) -> None:
    panel.new()
    errors = panel.form.field_errors()
    assert errors["project_name"] == errors["project_base_path"] == "required"
    assert errors["acquisition.grid_size_y"] == "required"
    panel.form.editors["project_name"].setText("sub-new")
    panel.form.editors["project_base_path"].setText(str(tmp_path / "new"))
    panel.form.modality.setCurrentIndex(panel.form.modality.findData("lsm"))
    assert panel.form.editors["project_name"].text() == "sub-new", "shared fields carry over"
    value = panel.value()
    assert isinstance(value, LSMScanConfig) and value.project_base_path == tmp_path / "new"
    panel.form.editors["strips_per_slice"].setText("12")
    assert panel.value().strips_per_slice == 12


def test_the_database_password_is_never_shown(panel: ConfigPanel, config: PSOCTScanConfig) -> None:
    config.database_url = URL
    panel.setValue(config)
    field = panel.form.database
    assert field.url_edit.text() == "postgresql://operator:***@dbhost:5432/opticstream_state"
    assert field.password_edit.echoMode() == QLineEdit.EchoMode.Password
    shown = [edit.text() for edit in panel.findChildren(QLineEdit) if edit.echoMode() == QLineEdit.EchoMode.Normal]
    assert not any("s3cret" in text for text in shown)
    assert panel.value().database_url == URL
    field.url_edit.setText("postgresql://operator:***@otherhost/opticstream_state")
    assert panel.value().database_url == "postgresql://operator:s3cret@otherhost/opticstream_state"
    field.url_edit.setText("postgresql://admin:typed@dbhost/db")
    field.url_edit.editingFinished.emit()
    assert field.url_edit.text() == "postgresql://admin:***@dbhost/db" and field.password_edit.text() == "typed"
    assert panel.value().database_url == "postgresql://admin:typed@dbhost/db"
    field.password_edit.setText("")
    assert panel.value().database_url == "postgresql://admin@dbhost/db", "an emptied box removes the password"
    field.url_edit.setText("")
    assert panel.value().database_url is None
