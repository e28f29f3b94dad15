"""Per-slice state as a table model: counts per level, and a colour for what needs attention.

Rows are slices, columns the slice's status and one column per level below it (mosaics,
batches, tiles for PS-OCT; channels, strips for light-sheet), each ``done/expected``: the
expected count comes from the scan config, so a slice still being acquired reads as behind,
not as complete. Updates insert and remove rows in place, so the operator's selection
survives the live updates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qtpy.QtCore import QAbstractTableModel, QModelIndex, Qt
from qtpy.QtGui import QColor

from opticstream_napari.viewer_link import Lifecycle

if TYPE_CHECKING:
    from opticstream_napari.viewer_link import SliceSummary

LEVELS = {"psoct": ("mosaic", "batch", "tile"), "lsm": ("channel", "strip")}
PLURAL = {"mosaic": "Mosaics", "batch": "Batches", "tile": "Tiles", "channel": "Channels", "strip": "Strips"}
COLOURS = {  # translucent, so the napari theme (dark or light) shows through
    "completed": QColor(76, 175, 80, 90),
    "running": QColor(33, 150, 243, 90),
    "blocked": QColor(255, 152, 0, 120),
    "failed": QColor(244, 67, 54, 120),
}
STATUS_HELP = {
    "completed": "every unit is done",
    "running": "work is going on",
    "blocked": "everything else is done: a failed unit needs a retry or a skip",
    "failed": "a unit failed; the rest goes on",
    "pending": "nothing has started yet",
}


def slice_status(summary: SliceSummary, levels: tuple[str, ...], expected: dict[str, int] | None = None) -> str:
    """completed, failed (work goes on), blocked (only failures are left), running or pending.

    A slice with a failure is blocked once every expected unit has arrived and nothing else is
    open; ``expected`` (units per level) keeps a slice still being acquired from looking blocked.
    """
    counts = summary.counts
    if summary.total("slice") and summary.done("slice") == summary.total("slice"):
        return "completed"
    failed = sum(counts[level][Lifecycle.FAILED] for level in levels)
    unit = levels[-1]
    open_work = counts[unit][Lifecycle.PENDING] + sum(counts[level][Lifecycle.RUNNING] for level in levels)
    arriving = summary.total(unit) < (expected or {}).get(unit, 0)
    if failed:
        return "failed" if open_work or arriving else "blocked"
    started = sum(counts[level][Lifecycle.RUNNING] + summary.done(level) for level in levels)
    return "running" if started else "pending"


def level_status(summary: SliceSummary, level: str, expected: int = 0) -> str:
    counts = summary.counts[level]
    if counts[Lifecycle.FAILED]:
        return "failed"
    if counts[Lifecycle.RUNNING]:
        return "running"
    if summary.total(level) and summary.done(level) == max(expected, summary.total(level)):
        return "completed"
    return "pending"


def level_text(summary: SliceSummary, level: str, expected: int = 0) -> str:
    """``done/expected`` with the running (▶) and failed (✗) counts when there are any."""
    counts = summary.counts[level]
    text = f"{summary.done(level)}/{max(expected, summary.total(level))}"
    if counts[Lifecycle.RUNNING]:
        text += f" ▶{counts[Lifecycle.RUNNING]}"
    if counts[Lifecycle.FAILED]:
        text += f" ✗{counts[Lifecycle.FAILED]}"
    return text


class SliceTableModel(QAbstractTableModel):
    """Rows of :class:`SliceSummary`, in slice order."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._levels: tuple[str, ...] = LEVELS["psoct"]
        self._expected: dict[str, int] = {}
        self._slices: list[int] = []
        self._summaries: dict[int, SliceSummary] = {}

    @property
    def levels(self) -> tuple[str, ...]:
        return self._levels

    def set_modality(self, modality: str, expected: dict[str, int] | None = None) -> None:
        """The levels to show and the units a complete slice has at each (from the scan config)."""
        self._expected = dict(expected or {})
        if LEVELS[modality] == self._levels:
            if self._slices:
                self.dataChanged.emit(self.index(0, 0), self.index(len(self._slices) - 1, self.columnCount() - 1))
            return
        self.beginResetModel()
        self._levels = LEVELS[modality]
        self._slices, self._summaries = [], {}
        self.endResetModel()

    def set_summaries(self, summaries: dict[int, SliceSummary]) -> None:
        """Replace the rows: removed slices leave, new ones are inserted in order, the rest change."""
        for row in reversed(range(len(self._slices))):
            if self._slices[row] not in summaries:
                self.beginRemoveRows(QModelIndex(), row, row)
                del self._slices[row]
                self.endRemoveRows()
        for slice_id in sorted(summaries):
            if slice_id not in self._slices:
                row = sum(1 for s in self._slices if s < slice_id)
                self.beginInsertRows(QModelIndex(), row, row)
                self._slices.insert(row, slice_id)
                self.endInsertRows()
        changed = [row for row, s in enumerate(self._slices) if summaries[s] != self._summaries.get(s)]
        self._summaries = dict(summaries)
        for row in changed:
            self.dataChanged.emit(self.index(row, 0), self.index(row, self.columnCount() - 1))

    def slice_at(self, row: int) -> int:
        return self._slices[row]

    def row_of(self, slice_id: int) -> int:
        return self._slices.index(slice_id)

    def summary(self, slice_id: int) -> SliceSummary | None:
        return self._summaries.get(slice_id)

    def rowCount(self, parent: QModelIndex | None = None) -> int:
        return 0 if parent is not None and parent.isValid() else len(self._slices)

    def columnCount(self, parent: QModelIndex | None = None) -> int:
        return 0 if parent is not None and parent.isValid() else 2 + len(self._levels)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role != Qt.ItemDataRole.DisplayRole or orientation != Qt.Orientation.Horizontal:
            return None
        return ("Slice", "Status", *(PLURAL[level] for level in self._levels))[section]

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        summary = self._summaries[self._slices[index.row()]]
        column = index.column()
        level = self._levels[column - 2] if column >= 2 else None
        expected = self._expected.get(level, 0) if level else 0
        if level is None:
            status = slice_status(summary, self._levels, self._expected)
        else:
            status = level_status(summary, level, expected)
        if role == Qt.ItemDataRole.DisplayRole:
            if column == 0:
                return str(summary.slice)
            return status if level is None else level_text(summary, level, expected)
        if role == Qt.ItemDataRole.BackgroundRole and column >= 1:
            return COLOURS.get(status)
        if role == Qt.ItemDataRole.ToolTipRole:
            if level is None:
                return f"Slice {summary.slice}: {status} ({STATUS_HELP[status]})"
            counts = summary.counts[level]
            return f"{PLURAL[level]}: " + ", ".join(f"{n} {state}" for state, n in counts.items())
        if role == Qt.ItemDataRole.TextAlignmentRole and column != 1:
            return int(Qt.AlignmentFlag.AlignCenter)
        return None
