"""The state table and its drill-down: the failed units of the selected slice, with their errors."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from opticstream_napari._qt.state_table import SliceTableModel

if TYPE_CHECKING:
    from opticstream_napari.viewer_link import Failure, Identity, SliceSummary


_PATH = re.compile(r"(?:/[^/\s:]+)+/([^/\s:]+)")


def unit_text(ident: Identity) -> str:
    """The unit below its slice, e.g. ``mosaic 3 · batch 2 · tile 6`` (the slice is the row picked)."""
    parts = str(ident).split("/", 1)[-1].split("/")[1:]
    return " · ".join(part.replace("=", " ") for part in parts) or str(ident)


def short_error(error: str) -> str:
    """The error with file paths cut to their names; the full text is the tooltip."""
    return _PATH.sub(r"\1", error)


class StatePanel(QWidget):
    """``sliceSelected(slice)`` when the operator picks a row; ``retryRequested(identity)`` from the drill-down."""

    sliceSelected = Signal(int)
    retryRequested = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = SliceTableModel(self)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.setMinimumHeight(140)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        for column in (0, 1):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.failures_label = QLabel("Select a slice to see its failed units.")
        self.failures_label.setWordWrap(True)
        self.failures = QTableWidget(0, 2)
        self.failures.setHorizontalHeaderLabels(["Unit", "Error"])
        self.failures.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.failures.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.failures.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.failures.setWordWrap(True)
        self.failures.verticalHeader().hide()
        self.failures.horizontalHeader().setStretchLastSection(True)
        self.failures.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.failures.setMinimumHeight(90)
        self.retry_button = QPushButton("Retry selected unit")
        self.retry_button.setToolTip("Return the unit to pending and process it again")
        self.retry_button.setEnabled(False)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.retry_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table, 2)
        layout.addWidget(self.failures_label)
        layout.addWidget(self.failures, 1)
        layout.addLayout(buttons)
        self._shown: tuple[Failure, ...] = ()
        self.table.selectionModel().selectionChanged.connect(self._on_select)
        self.failures.itemSelectionChanged.connect(self._on_failure_select)
        self.retry_button.clicked.connect(self._retry)

    def selected_slice(self) -> int | None:
        rows = self.table.selectionModel().selectedRows()
        return self.model.slice_at(rows[0].row()) if rows else None

    def select_slice(self, slice_id: int) -> None:
        self.table.selectRow(self.model.row_of(slice_id))

    def set_summaries(self, summaries: dict[int, SliceSummary]) -> None:
        self.model.set_summaries(summaries)

    def show_failures(self, slice_id: int, failures: tuple[Failure, ...]) -> None:
        """Fill the drill-down, if the answer is for the slice still selected."""
        if slice_id != self.selected_slice():
            return
        self._shown = failures
        self.failures.setRowCount(len(failures))
        for row, failure in enumerate(failures):
            unit = QTableWidgetItem(unit_text(failure.ident))
            unit.setToolTip(str(failure.ident))
            error = QTableWidgetItem(short_error(failure.error))
            error.setToolTip(failure.error)
            self.failures.setItem(row, 0, unit)
            self.failures.setItem(row, 1, error)
        self.failures.resizeRowsToContents()
        self.failures_label.setText(
            f"Slice {slice_id}: {len(failures)} failed unit(s)" if failures else f"Slice {slice_id}: nothing failed."
        )

    def _on_select(self) -> None:
        slice_id = self.selected_slice()
        self.failures.setRowCount(0)
        self._shown = ()
        if slice_id is not None:
            self.failures_label.setText(f"Slice {slice_id}: looking for failed units…")
            self.sliceSelected.emit(slice_id)

    def _on_failure_select(self) -> None:
        self.retry_button.setEnabled(bool(self.failures.selectionModel().selectedRows()))

    def selected_failure(self) -> Identity | None:
        rows = self.failures.selectionModel().selectedRows()
        return self._shown[rows[0].row()].ident if rows else None

    def _retry(self) -> None:
        ident = self.selected_failure()
        if ident is not None:
            self.retryRequested.emit(ident)
