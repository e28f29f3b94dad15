"""The OpticStream dock widget: the operator's screen.

It owns its panels and one :class:`~opticstream_napari.viewer_link.ViewerLink`, and only wires
them together: every command goes to the link, every layer and database query comes from it.
Closing the widget, or napari, closes the link, which stops the engine and the state follower.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QFrame, QGroupBox, QLabel, QScrollArea, QToolButton, QVBoxLayout, QWidget

from opticstream_napari._qt.config_panel import ConfigPanel
from opticstream_napari._qt.controls import ControlPanel
from opticstream_napari._qt.settings import Prefs
from opticstream_napari._qt.state_panel import StatePanel
from opticstream_napari.viewer_link import Lifecycle, ViewerLink, expected_counts

if TYPE_CHECKING:
    import napari
    from qtpy.QtGui import QCloseEvent

    from opticstream_napari.viewer_link import ScanConfigModel, SliceSummary


MINIMUM_WIDTH = 380  # room for the state table's counts without eliding them


class OpticStreamWidget(QWidget):
    """Dock widget; owns its panels and hands every command to the viewer link, never computing."""

    def __init__(self, viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.prefs = Prefs()
        self.link = ViewerLink(viewer)
        self.link.preview_level = self.prefs.preview_level
        self.config_panel = ConfigPanel(self, default_database_url=self.prefs.database_url)
        self.controls = ControlPanel(self)
        self.controls.setRawFolder(self.prefs.raw_folder)
        self.state_panel = StatePanel(self)
        self.status_label = QLabel("Load a scan config to begin.")
        self.status_label.setWordWrap(True)
        self.config_toggle = QToolButton()
        self.config_toggle.setText("Scan config")
        self.config_toggle.setCheckable(True)
        self.config_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.config_toggle.toggled.connect(self._show_config)
        self.config_toggle.setChecked(True)
        content = QWidget()
        layout = QVBoxLayout(content)
        layout.addWidget(self.config_toggle)
        layout.addWidget(self.config_panel)
        for title, panel, stretch in (("Acquisition", self.controls, 0), ("State", self.state_panel, 1)):
            box = QGroupBox(title)
            QVBoxLayout(box).addWidget(panel)
            layout.addWidget(box, stretch)
        layout.addWidget(self.status_label)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(content)
        self.setMinimumWidth(MINIMUM_WIDTH)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        self._failed_counts: dict[int, int] = {}
        self._connect()
        self.destroyed.connect(partial(_close_link, self.link))

    def _connect(self) -> None:
        self.config_panel.valueChanged.connect(self._on_config)
        self.config_panel.form.validityChanged.connect(self.controls.setReady)
        self.config_panel.configApplied.connect(self._apply_config)
        self.controls.startRequested.connect(self.start)
        self.controls.stopRequested.connect(self.link.stop)
        self.state_panel.sliceSelected.connect(self._on_slice)
        self.state_panel.retryRequested.connect(self.link.retry)
        self.link.stateChanged.connect(self._on_state)
        self.link.failuresFound.connect(self.state_panel.show_failures)
        self.link.runningChanged.connect(self.controls.setRunning)
        self.link.message.connect(self.status_label.setText)

    def _show_config(self, shown: bool) -> None:
        """The config folds away once processing starts, leaving room for the state table."""
        self.config_panel.setVisible(shown)
        self.config_toggle.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)

    def _on_config(self, config: ScanConfigModel) -> None:
        self.status_label.setText(f"Project {config.project_name} loaded.")

    def _apply_config(self, config: ScanConfigModel) -> None:
        """A loaded or saved config is the project to follow; its database becomes the default for new ones.

        Its layers are made now, one per tick, not at Start: each costs napari 0.1-0.7 s of GUI
        thread, which is better spent while the operator opens a project than while tiles land.
        """
        self.state_panel.model.set_modality(config.modality, expected_counts(config))
        self.link.set_config(config)
        self.link.prepare_layers()
        if config.database_url:
            self.prefs.database_url = config.database_url

    def start(self, raw_folder: Path, force: bool = False, *, remember: bool = True) -> None:
        """Process ``raw_folder`` with the config in the form (the Start button; the demo calls it too).

        ``remember`` keeps the folder in the settings for the next session (not a demo's temporary one).
        """
        config = self.config_panel.value()
        if config is None:
            self.status_label.setText("Fix the scan config before starting.")
            return
        self.controls.setRawFolder(raw_folder)
        self.state_panel.model.set_modality(config.modality, expected_counts(config))
        self.config_toggle.setChecked(False)
        self.link.set_config(config)
        self.link.preview_level = self.prefs.preview_level
        if remember:
            self.prefs.raw_folder = str(raw_folder)
        self.link.start(raw_folder, force=force)

    def _on_slice(self, slice_id: int) -> None:
        self.link.show_slice(slice_id)
        self.link.request_failures(slice_id)

    def _on_state(self, summaries: dict[int, SliceSummary]) -> None:
        """New counts; the drill-down of the selected slice is looked up again when its failures change."""
        self.state_panel.set_summaries(summaries)
        level = self.state_panel.model.levels
        counts = {s: sum(summary.counts[lv][Lifecycle.FAILED] for lv in level) for s, summary in summaries.items()}
        selected = self.state_panel.selected_slice()
        if selected is not None and counts.get(selected) != self._failed_counts.get(selected):
            self.link.request_failures(selected)
        self._failed_counts = counts

    def closeEvent(self, event: QCloseEvent) -> None:
        self.link.close()
        super().closeEvent(event)


def _close_link(link: ViewerLink) -> None:
    """Runs when the widget is destroyed (napari closed, dock removed); holds the link, never the widget."""
    link.close()
