"""The OpticStream dock widget: the operator's screen."""

from __future__ import annotations

from typing import TYPE_CHECKING

from qtpy.QtWidgets import QGroupBox, QLabel, QVBoxLayout, QWidget

from opticstream_napari._qt.config_panel import ConfigPanel

if TYPE_CHECKING:
    import napari


class OpticStreamWidget(QWidget):
    """Dock widget; owns its panels and hands every command to the engine, never computing."""

    def __init__(self, viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.config_panel = ConfigPanel(self)
        self.status_label = QLabel("Load a scan config to begin.")
        self.status_label.setWordWrap(True)
        config_box = QGroupBox("Scan config")
        QVBoxLayout(config_box).addWidget(self.config_panel)
        layout = QVBoxLayout(self)
        layout.addWidget(config_box)
        layout.addWidget(self.status_label)
        layout.addStretch(1)
        self.config_panel.valueChanged.connect(self._on_config)

    def _on_config(self, config: object) -> None:
        name = getattr(config, "project_name", "?")
        self.status_label.setText(f"Project {name} loaded.")
