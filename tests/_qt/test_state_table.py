"""The per-slice state table over a real SQLite state database, live from the change feed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from qtpy.QtCore import Qt

from opticstream_napari._qt.main_widget import OpticStreamWidget
from opticstream_napari._qt.state_table import COLOURS, SliceTableModel, slice_status
from opticstream_napari.config import PSOCTScanConfig
from opticstream_napari.identity import PSOCTSliceId, PSOCTTileId
from opticstream_napari.simulate.psoct import psoct_preset
from opticstream_napari.state.hierarchy import ProjectKey
from opticstream_napari.state.service import StateService
from opticstream_napari.state.summary import SliceSummary, summarize
from opticstream_napari.viewer_link import Lifecycle, expected_counts

ERROR = "ValueError: spectral file is 4096 bytes short"


@pytest.fixture
def config(tmp_path: Path) -> PSOCTScanConfig:
    return psoct_preset(tmp_path / "project", "tiny")


@pytest.fixture
def state(config: PSOCTScanConfig) -> Iterator[StateService]:
    with StateService.for_config(config) as service:
        yield service


def _tile(config: PSOCTScanConfig, batch: int, tile: int, mosaic: int = 1) -> PSOCTTileId:
    return PSOCTTileId(config.project_name, 1, mosaic, batch, tile)


def _finish(state: StateService, tile: PSOCTTileId, error: str | None = None) -> None:
    with state.update(tile) as node:
        node.mark_started()
        if error is None:
            node.mark_completed()
        else:
            node.mark_failed(error)


@pytest.fixture
def acquired(config: PSOCTScanConfig, state: StateService) -> StateService:
    """Slice 1, mosaic 1 (2 batches of 3 tiles): tiles 1-2 completed, tile 3 failed, the rest pending."""
    state.register(_tile(config, batch, tile) for batch, tiles in ((1, (1, 2, 3)), (2, (4, 5, 6))) for tile in tiles)
    _finish(state, _tile(config, 1, 1))
    _finish(state, _tile(config, 1, 2))
    _finish(state, _tile(config, 1, 3), ERROR)
    return state


@pytest.fixture
def widget(make_napari_viewer_proxy) -> OpticStreamWidget:
    viewer = make_napari_viewer_proxy()
    widget = OpticStreamWidget(viewer)
    viewer.window.add_dock_widget(widget, name="OpticStream")
    return widget


def _cell(model: SliceTableModel, row: int, column: int, role: Qt.ItemDataRole = Qt.ItemDataRole.DisplayRole):
    return model.data(model.index(row, column), role)


def test_status_rules(config: PSOCTScanConfig, acquired: StateService) -> None:
    summary = summarize(acquired, _project(config))[1]
    levels = ("mosaic", "batch", "tile")
    expected = expected_counts(config)
    assert expected == {"mosaic": 2, "batch": 5, "tile": 15}
    assert slice_status(summary, levels, expected) == "failed", "tiles are still pending: the rest goes on"
    for tile in (4, 5, 6):
        _finish(acquired, _tile(config, 2, tile))
    summary = summarize(acquired, _project(config))[1]
    assert slice_status(summary, levels, expected) == "failed", "the second mosaic is still to come"
    assert slice_status(summary, levels, {**expected, "tile": 6}) == "blocked", "only the failure is left"
    empty = SliceSummary(2, {lv: dict.fromkeys((s.value for s in Lifecycle), 0) for lv in ("slice", *levels)})
    assert slice_status(empty, levels) == "pending"


def _project(config: PSOCTScanConfig) -> ProjectKey:
    return ProjectKey("psoct", config.project_name)


def test_table_shows_counts_and_the_failed_units_error(
    widget: OpticStreamWidget, config: PSOCTScanConfig, acquired: StateService, qtbot, monkeypatch
) -> None:
    warnings: list[str] = []
    infos: list[str] = []
    monkeypatch.setattr("opticstream_napari.viewer_link.mediator.show_warning", warnings.append)
    monkeypatch.setattr("opticstream_napari.viewer_link.mediator.show_info", infos.append)
    widget.config_panel.setValue(config)
    model = widget.state_panel.model
    qtbot.waitUntil(lambda: model.rowCount() == 1, timeout=5000)
    assert [model.headerData(c, Qt.Orientation.Horizontal) for c in range(5)] == [
        "Slice", "Status", "Mosaics", "Batches", "Tiles"]
    assert _cell(model, 0, 0) == "1" and _cell(model, 0, 1) == "failed"
    assert [_cell(model, 0, c) for c in (2, 3, 4)] == ["0/2", "0/5", "2/15 ✗1"], "done of the expected units"
    assert _cell(model, 0, 4, Qt.ItemDataRole.BackgroundRole) == COLOURS["failed"]
    assert "2 completed" in _cell(model, 0, 4, Qt.ItemDataRole.ToolTipRole)

    widget.state_panel.select_slice(1)
    failures = widget.state_panel.failures
    qtbot.waitUntil(lambda: failures.rowCount() == 1, timeout=5000)
    assert failures.item(0, 0).text() == "mosaic 1 · batch 1 · tile 3"
    assert failures.item(0, 1).text() == ERROR

    _finish(acquired, _tile(config, 2, 4), "OSError: disk full")
    qtbot.waitUntil(lambda: _cell(model, 0, 4) == "2/15 ✗2", timeout=5000)
    qtbot.waitUntil(lambda: failures.rowCount() == 2, timeout=5000)
    assert failures.item(1, 1).text() == "OSError: disk full"
    assert any("tile=4 failed: OSError: disk full" in text for text in warnings)

    failures.selectRow(1)
    assert widget.state_panel.retry_button.isEnabled()
    assert widget.state_panel.selected_failure() == _tile(config, 2, 4)

    with acquired.update(PSOCTSliceId(config.project_name, 1)) as node:
        node.mark_completed()
    qtbot.waitUntil(lambda: _cell(model, 0, 1) == "completed", timeout=5000)
    assert "Slice 1 is complete." in infos
    qtbot.waitUntil(lambda: not widget.link.busy, timeout=5000)
