"""Load, edit and save a scan config; problems appear in the panel, not in a log.

Field problems appear beside their fields (:mod:`.config_form`); a file that does not load is
reported here with every problem and the current config is kept.
"""

from __future__ import annotations

from pathlib import Path

from qtpy.QtCore import Signal
from qtpy.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from opticstream_napari._qt.config_form import ConfigForm, ErrorLabel
from opticstream_napari.config import ConfigError, load_config, save_config
from opticstream_napari.viewer_link import ScanConfigModel


class ConfigPanel(QWidget):
    """The config form with its file.

    ``valueChanged`` fires with every new valid config (each edit); ``configApplied`` only when
    a config is loaded, saved or set from code: the moments the project may change.
    """

    valueChanged = Signal(object)
    configApplied = Signal(object)

    def __init__(self, parent: QWidget | None = None, default_database_url: str | None = None) -> None:
        super().__init__(parent)
        self._path: Path | None = None
        self._default_database_url = default_database_url
        self.form = ConfigForm(self)
        self.new_button = QPushButton("New")
        self.new_button.setToolTip("Start a new config of the chosen modality")
        self.load_button = QPushButton("Load config…")
        self.save_button = QPushButton("Save config…")
        self.save_button.setEnabled(False)
        self.file_label = QLabel("(not saved)")
        self.file_label.setWordWrap(True)
        self.error_label = ErrorLabel()
        self.error_label.setObjectName("config_error")
        buttons = QHBoxLayout()
        for button in (self.new_button, self.load_button, self.save_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.form)
        layout.addWidget(self.file_label)
        layout.addLayout(buttons)
        layout.addWidget(self.error_label)
        self.form.valueChanged.connect(self.valueChanged)
        self.form.validityChanged.connect(self.save_button.setEnabled)
        self.new_button.clicked.connect(self.new)
        self.load_button.clicked.connect(self._ask_load)
        self.save_button.clicked.connect(self._ask_save)

    def value(self) -> ScanConfigModel | None:
        return self.form.value()

    def path(self) -> Path | None:
        return self._path

    def setValue(self, config: ScanConfigModel, path: Path | None = None) -> None:
        self._path = path
        self.file_label.setText(f"Config file: {path}" if path else "(not saved)")
        self.error_label.show_error("")
        self.form.setValue(config)
        self.configApplied.emit(config)

    def new(self) -> None:
        self._path = None
        self.file_label.setText("(not saved)")
        self.error_label.show_error("")
        self.form.clear(self.form.current_modality(), self._default_database_url)

    def load(self, path: str | Path) -> bool:
        """Load a YAML config; on failure the message is shown and the current config kept."""
        try:
            config = load_config(path)
        except ConfigError as error:
            self.error_label.show_error(str(error))
            return False
        self.setValue(config, Path(path))
        return True

    def save(self, path: str | Path) -> bool:
        config = self.value()
        if config is None:
            self.error_label.show_error("no valid config to save: fix the fields marked above")
            return False
        try:
            save_config(config, path)
        except (ConfigError, OSError) as error:
            self.error_label.show_error(str(error))
            return False
        self.setValue(config, Path(path))
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
