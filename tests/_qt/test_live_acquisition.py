"""A simulated live acquisition run from the widget: layers grow, the table completes, failures show, cancel stops."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from napari.settings import get_plugin_settings

from opticstream_napari import naming
from opticstream_napari._qt.main_widget import OpticStreamWidget
from opticstream_napari._qt.settings import PLUGIN_NAME
from opticstream_napari.cli.simulate_cmd import SimulatedRun, iter_acquisition
from opticstream_napari.simulate.live import Pace
from opticstream_napari.viewer_link import EngineOptions
from opticstream_napari.viewer_link.layer_specs import role_placeholders

OPTIONS = EngineOptions(stability_seconds=0.2, poll_interval=0.1, incomplete_grace=0.3)
AIP = (2, "aip")  # the second (tilted) mosaic: its layers come after napari has set up its canvas


@pytest.fixture
def widget(make_napari_viewer_proxy, tiny_run: SimulatedRun) -> OpticStreamWidget:
    viewer = make_napari_viewer_proxy()
    widget = OpticStreamWidget(viewer)
    viewer.window.add_dock_widget(widget, name="OpticStream")
    widget.link.options = OPTIONS
    assert widget.config_panel.load(tiny_run.config_path)
    widget.controls.setRawFolder(tiny_run.raw_folder)
    return widget


def _acquire(run: SimulatedRun, pace: Pace, stop: threading.Event) -> threading.Thread:
    def write() -> None:
        for _ in iter_acquisition(run, slices=1, seed=0, pace=pace, stop=stop):
            pass

    thread = threading.Thread(target=write, name="test-simulator", daemon=True)
    thread.start()
    return thread


@pytest.fixture
def acquisition(tiny_run: SimulatedRun) -> Iterator[threading.Thread]:
    stop = threading.Event()
    thread = _acquire(tiny_run, Pace(0.25, pieces=2), stop)
    yield thread
    stop.set()
    thread.join()


def _is_live(source: str | None) -> bool:
    return bool(source) and Path(source).parent.name == naming.LIVE_FOLDER


def _is_final(source: str | None) -> bool:
    """A final store: neither the live preview nor the empty layer made at Start."""
    return bool(source) and not _is_live(source)


def _status(widget: OpticStreamWidget) -> str | None:
    model = widget.state_panel.model
    return model.data(model.index(0, 1)) if model.rowCount() else None


def test_live_acquisition_grows_mosaic_layers_and_completes(
    widget: OpticStreamWidget, acquisition: threading.Thread, tiny_run: SimulatedRun, qtbot
) -> None:
    link = widget.link
    widget.controls.start_button.click()
    assert link.running and not widget.controls.start_button.isEnabled()
    assert get_plugin_settings(PLUGIN_NAME).session.last_raw_folder == str(tiny_run.raw_folder)
    roles = {spec.key for spec in role_placeholders(link.config)}
    qtbot.waitUntil(lambda: set(link.layers) == roles, timeout=30000)
    made_at_start = dict(link.layers)
    assert made_at_start[(2, "O3D")].ndim == 3, "every role exists before its data, volumes included"
    covered: list[int] = []

    def mosaic_finalised() -> bool:
        layer = link.layers.get(AIP)
        if layer is not None and _is_live(link.source_of(AIP)):
            pixels = int(np.isfinite(np.asarray(layer.data[0])).sum())
            if not covered or pixels != covered[-1]:
                covered.append(pixels)
        return layer is not None and _is_final(link.source_of(AIP))

    qtbot.waitUntil(mosaic_finalised, timeout=30000)
    assert len(covered) >= 2 and covered == sorted(covered), f"the live AIP mosaic grew tile by tile: {covered}"
    qtbot.waitUntil(lambda: _status(widget) == "completed", timeout=30000)
    volumes = [link.layers[(2, what)] for what in ("dBI", "R3D", "O3D")]
    qtbot.waitUntil(lambda: all(v.name.endswith(" · tilted · slice 1") for v in volumes), timeout=30000)
    qtbot.waitUntil(lambda: not link.busy, timeout=10000)
    assert link.source_of((2, "dBI")) == "", "a hidden volume is named for its mosaic; its data waits until shown"
    volumes[0].visible = True
    qtbot.waitUntil(lambda: _is_final(link.source_of((2, "dBI"))) and not link.busy, timeout=10000)
    assert volumes[0].data[0].shape[0] > 2, "the stitched volume, not the empty layer"
    layers = link.layers
    assert {what for position, what in layers if position == 2} == {
        "aip", "ret", "ori", "biref", "mip", "surf", "mask", "tiles", "dBI", "R3D", "O3D"}
    assert layers[(2, "O3D")].ndim == 3 and layers[(2, "aip")].ndim == 2
    assert all(layer.multiscale for (_, what), layer in layers.items() if what in ("aip", "ori"))
    assert layers[(1, "ori")].colormap.name == "twilight_shifted"
    assert layers[(2, "aip")].name == "AIP · tilted · slice 1"
    assert all(layers[key] is layer for key, layer in made_at_start.items()), "data swapped in, no layer re-made"
    model = widget.state_panel.model
    assert model.data(model.index(0, 4)) == "15/15"
    widget.controls.stop_button.click()
    qtbot.waitUntil(lambda: not link.running, timeout=5000)
    assert widget.controls.start_button.isEnabled()


def test_a_truncated_tile_fails_with_its_reason_is_retried_and_cancel_stops_at_once(
    widget: OpticStreamWidget, tiny_run: SimulatedRun, qtbot
) -> None:
    _acquire(tiny_run, Pace(), threading.Event()).join()
    broken = tiny_run.raw_folder / naming.psoct_spectral_tile_name(1, 3)
    whole = broken.read_bytes()
    broken.write_bytes(whole[:4096])
    link = widget.link
    widget.controls.start_button.click()
    qtbot.waitUntil(lambda: _status(widget) == "blocked", timeout=30000)
    panel = widget.state_panel
    panel.select_slice(1)
    qtbot.waitUntil(lambda: panel.failures.rowCount() == 1, timeout=5000)
    assert panel.failures.item(0, 0).text() == "mosaic 1 · batch 1 · tile 3"
    reason = panel.failures.item(0, 1).text()
    assert reason.startswith(f"RawTileError: {broken.name}: ") and "expected 393568 bytes, found 4096 bytes" in reason
    assert str(broken) in panel.failures.item(0, 1).toolTip()

    broken.write_bytes(whole)
    panel.failures.selectRow(0)
    panel.retry_button.click()
    qtbot.waitUntil(lambda: _status(widget) == "completed", timeout=30000)
    qtbot.waitUntil(lambda: panel.failures.rowCount() == 0, timeout=5000)
    assert link.running, "after the retry the engine goes on watching"

    started = time.monotonic()
    link._progress.cancel()
    qtbot.waitUntil(lambda: not link.running, timeout=5000)
    assert time.monotonic() - started < 1.0
    qtbot.waitUntil(lambda: not link.busy, timeout=10000)
