"""Load, show and save a scan config; validation messages appear in the panel, not in a log."""

from __future__ import annotations

from pathlib import Path

from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from opticstream_napari.config import (
    ConfigError,
    LSMScanConfig,
    PSOCTScanConfig,
    load_config,
    save_config,
)

ScanConfigModel = LSMScanConfig | PSOCTScanConfig


class ConfigPanel(QWidget):
    """Holds the current scan config; ``valueChanged`` fires with every new valid config."""

    valueChanged = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._config: ScanConfigModel | None = None
        self._path: Path | None = None
        self.load_button = QPushButton("Load config…")
        self.save_button = QPushButton("Save config…")
        self.save_button.setEnabled(False)
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setObjectName("config_error")
        self._fields = {name: QLabel("–") for name in ("modality", "project", "base", "path")}
        form = QFormLayout()
        form.addRow("Modality", self._fields["modality"])
        form.addRow("Project", self._fields["project"])
        form.addRow("Project folder", self._fields["base"])
        form.addRow("Config file", self._fields["path"])
        buttons = QHBoxLayout()
        buttons.addWidget(self.load_button)
        buttons.addWidget(self.save_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.error_label)
        self.load_button.clicked.connect(self._ask_load)
        self.save_button.clicked.connect(self._ask_save)

    def value(self) -> ScanConfigModel | None:
        return self._config

    def path(self) -> Path | None:
        return self._path

    def setValue(self, config: ScanConfigModel, path: Path | None = None) -> None:
        self._config = config
        self._path = path
        self._fields["modality"].setText("PS-OCT" if config.modality == "psoct" else "Light-sheet")
        self._fields["project"].setText(config.project_name)
        self._fields["base"].setText(str(config.project_base_path))
        self._fields["path"].setText(str(path) if path else "(not saved)")
        self.error_label.clear()
        self.save_button.setEnabled(True)
        self.valueChanged.emit(config)

    def load(self, path: str | Path) -> bool:
        """Load a YAML config; on failure the message is shown and the current config kept."""
        try:
            config = load_config(path)
        except ConfigError as error:
            self.error_label.setText(str(error))
            return False
        self.setValue(config, Path(path))
        return True

    def save(self, path: str | Path) -> bool:
        if self._config is None:
            self.error_label.setText("no config to save: load or create one first")
            return False
        try:
            save_config(self._config, path)
        except (ConfigError, OSError) as error:
            self.error_label.setText(str(error))
            return False
        self.setValue(self._config, Path(path))
        return True

    def _ask_load(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load scan config", "", "YAML (*.yaml *.yml)")
        if path:
            self.load(path)

    def _ask_save(self) -> None:
        start = str(self._path or "scan.yaml")
        path, _ = QFileDialog.getSaveFileName(self, "Save scan config", start, "YAML (*.yaml)")
        if path:
            self.save(path)
