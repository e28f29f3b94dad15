"""Start and stop watching a raw folder; the work itself runs in the engine, off the GUI thread."""

from __future__ import annotations

from pathlib import Path

from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)


class ControlPanel(QWidget):
    """``startRequested(raw folder, force)`` and ``stopRequested``; :meth:`setRunning` reflects the engine."""

    startRequested = Signal(object, bool)
    stopRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._ready = False
        self._running = False
        self.raw_edit = QLineEdit()
        self.raw_edit.setPlaceholderText("Raw folder the instrument writes to")
        browse = QToolButton()
        browse.setText("…")
        browse.setToolTip("Choose the raw folder")
        self.force_check = QCheckBox("Force re-run (process completed units again)")
        self.start_button = QPushButton("Start")
        self.start_button.setToolTip("Watch the raw folder and process every unit as it completes")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop claiming work; units in flight finish and are recorded")
        folder = QHBoxLayout()
        folder.addWidget(self.raw_edit, 1)
        folder.addWidget(browse)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.stop_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(folder)
        layout.addWidget(self.force_check)
        layout.addLayout(buttons)
        browse.clicked.connect(self._choose)
        self.raw_edit.textChanged.connect(self._update)
        self.start_button.clicked.connect(self._start)
        self.stop_button.clicked.connect(self.stopRequested)
        self._update()

    def raw_folder(self) -> Path | None:
        text = self.raw_edit.text().strip()
        return Path(text) if text else None

    def setRawFolder(self, folder: str | Path | None) -> None:
        self.raw_edit.setText(str(folder) if folder else "")

    def setReady(self, ready: bool) -> None:
        """Whether a valid config is there to run."""
        self._ready = ready
        self._update()

    def setRunning(self, running: bool) -> None:
        self._running = running
        self._update()

    def _update(self) -> None:
        self.start_button.setEnabled(self._ready and not self._running and self.raw_folder() is not None)
        self.stop_button.setEnabled(self._running)
        self.raw_edit.setEnabled(not self._running)
        self.force_check.setEnabled(not self._running)

    def _choose(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Raw folder", self.raw_edit.text())
        if folder:
            self.raw_edit.setText(folder)

    def _start(self) -> None:
        folder = self.raw_folder()
        if folder is not None:
            self.startRequested.emit(folder, self.force_check.isChecked())
