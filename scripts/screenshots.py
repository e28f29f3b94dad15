"""Take the user guide's screenshots (docs/images/*.png) from the running widget.

Runs what ``scripts/demo`` runs (napari, the dock widget, a live simulated PS-OCT acquisition on
the embedded defaults) and captures the window at the moments the guide describes, so the
pictures can be remade whenever the widget changes. Needs a display: ``scripts/screenshots``
runs it under Xvfb. Usage::

    scripts/screenshots [--output docs/images] [--keep FOLDER]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication

from opticstream_napari import naming
from opticstream_napari._qt.main_widget import OpticStreamWidget
from opticstream_napari.cli.demo_cmd import start_instrument
from opticstream_napari.cli.simulate_cmd import SimulatedRun, iter_acquisition, prepare_run
from opticstream_napari.engine.executors import spawn_context
from opticstream_napari.simulate.live import Pace, StopSignal
from opticstream_napari.viewer_link import EngineOptions

WINDOW = (1600, 1000)
BROKEN = (3, 4)  # (mosaic, image): a tile of slice 2, truncated once written
OPTIONS = EngineOptions(stability_seconds=0.5, poll_interval=0.2, incomplete_grace=30.0)


def wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Run the Qt event loop until ``predicate()`` holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout:.0f} s waiting for {what}")
        QApplication.processEvents()
        time.sleep(0.02)


def _spin(seconds: float) -> None:
    """Let pending slots, layer updates and redraws run."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def capture(viewer: napari.Viewer, path: Path) -> None:
    _spin(1.5)
    viewer.screenshot(str(path), canvas_only=False)
    print(f"wrote {path}", flush=True)


def show_only(widget: OpticStreamWidget, *names: str) -> None:
    """Make exactly the named layers visible (a layer is named for its slice once its data
    exists; a hidden one reads it when shown), select the first, and fit the view to it."""
    viewer = widget.viewer
    wait(lambda: all(n in viewer.layers for n in names), 120, f"layers {names}")
    for layer in viewer.layers:
        layer.visible = layer.name in names
    end = time.monotonic() + 10
    while widget.link.busy and time.monotonic() < end:  # the shown layers' data, read off the GUI thread
        _spin(0.1)
    viewer.layers.selection.active = viewer.layers[names[0]]
    viewer.reset_view()


def cell(widget: OpticStreamWidget, slice_id: int, column: int) -> str | None:
    """The state table's text for a slice: column 1 is the status, 2 mosaics, 3 batches, 4 tiles."""
    model = widget.state_panel.model
    for row in range(model.rowCount()):
        if model.data(model.index(row, 0)) == str(slice_id):
            return str(model.data(model.index(row, column)))
    return None


def tiles_done(widget: OpticStreamWidget, slice_id: int) -> int:
    return int((cell(widget, slice_id, 4) or "0/").split("/")[0])


def acquire(run: SimulatedRun, pace: Pace, stop: threading.Event) -> threading.Thread:
    """Write two slices as the instrument does; one tile of slice 2 is cut short once written."""
    broken = naming.psoct_spectral_tile_name(*BROKEN)

    def write() -> None:
        for path in iter_acquisition(run, slices=2, seed=0, pace=pace, stop=stop):
            if path.name == broken:
                path.write_bytes(path.read_bytes()[:4096])

    thread = threading.Thread(target=write, name="screenshot-simulator", daemon=True)
    thread.start()
    return thread


def config_validation(widget: OpticStreamWidget, viewer: napari.Viewer, out: Path) -> None:
    widget.config_toggle.setChecked(True)
    editors = widget.config_panel.form.editors
    editors["acquisition.grid_size_y"].setText("0")
    editors["mask_threshold_normal"].setText("sixty")
    wait(lambda: len(widget.config_panel.form.field_errors()) == 2, 10, "the two validation messages")
    capture(viewer, out / "widget-config-validation.png")


def open_project(run: SimulatedRun) -> tuple[napari.Viewer, OpticStreamWidget]:
    """napari with the widget, the simulated project's config loaded."""
    viewer = napari.Viewer(title="OpticStream")
    viewer.window.resize(*WINDOW)
    widget = OpticStreamWidget(viewer)
    viewer.window.add_dock_widget(widget, name="OpticStream", area="right")
    widget.link.options = OPTIONS
    if not widget.config_panel.load(run.config_path):
        raise RuntimeError(f"the simulated config {run.config_path} did not load")
    return viewer, widget


def stop_engine(widget: OpticStreamWidget) -> None:
    widget.controls.stop_button.click()
    wait(lambda: not widget.link.running, 30, "the engine to stop")


def close(viewer: napari.Viewer, stop: StopSignal, writer: threading.Thread | BaseProcess) -> None:
    """Stop the simulated instrument before the window goes."""
    stop.set()
    writer.join()
    viewer.close()


def live_session(run: SimulatedRun, out: Path) -> None:
    viewer, widget = open_project(run)
    config_validation(widget, viewer, out)
    widget.config_panel.load(run.config_path)
    stop = threading.Event()
    simulator = acquire(run, Pace(0.3, pieces=4), stop)
    try:
        widget.start(run.raw_folder, remember=False)
        wait(lambda: tiles_done(widget, 1) >= 8, 300, "8 tiles of slice 1")
        show_only(widget, "AIP · normal · slice 1")
        capture(viewer, out / "widget-live-mosaic.png")

        wait(lambda: cell(widget, 1, 1) == "completed", 600, "slice 1 to complete")
        wait(lambda: cell(widget, 1, 2) == "2/2", 600, "the volumes of slice 1")
        wait(lambda: cell(widget, 2, 1) is not None, 300, "slice 2 to start")
        widget.state_panel.select_slice(1)  # an older slice picked stays shown while slice 2 grows
        show_only(widget, "AIP · normal · slice 1", "mask · normal · slice 1")
        capture(viewer, out / "widget-mask-qc.png")
        show_only(widget, "ORI · normal · slice 1", "tiles · normal · slice 1")
        capture(viewer, out / "widget-orientation-tiles.png")

        wait(lambda: cell(widget, 2, 1) in ("blocked", "failed"), 600, "slice 2 to stop at its cut tile")
        panel = widget.state_panel
        panel.select_slice(2)
        show_only(widget, "AIP · normal · slice 2")
        wait(lambda: panel.failures.rowCount() >= 1, 30, "the failed tile in the drill-down")
        panel.failures.selectRow(0)
        capture(viewer, out / "widget-failure-drilldown.png")
        stop_engine(widget)
    finally:
        close(viewer, stop, simulator)


def lsm_session(run: SimulatedRun, out: Path) -> None:
    """A light-sheet slice: camera 1's MIP halves overlaid once its strips are processed."""
    viewer, widget = open_project(run)
    stop = spawn_context().Event()
    instrument = start_instrument(run, 1, Pace(0.3, pieces=4), stop)
    try:
        widget.start(run.raw_folder, remember=False)
        wait(lambda: cell(widget, 1, 1) == "completed", 300, "the LSM slice to complete")
        show_only(widget, "MIP ch1 · camera 1 · slice 1", "MIP ch2 · camera 1 · slice 1")
        capture(viewer, out / "widget-lsm-mips.png")
        stop_engine(widget)
    finally:
        close(viewer, stop, instrument)


def sample_session(out: Path) -> None:
    viewer = napari.Viewer(title="OpticStream")
    viewer.window.resize(*WINDOW)
    viewer.window.add_dock_widget(OpticStreamWidget(viewer), name="OpticStream", area="right")
    viewer.open_sample("opticstream-napari", "psoct_slice")
    capture(viewer, out / "sample-psoct.png")
    viewer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "images")
    parser.add_argument("--keep", type=Path, default=None, help="simulate into this folder and keep it")
    parser.add_argument("--only", choices=["psoct", "lsm", "sample"], action="append",
                        help="take only these sessions' screenshots (default: all)")
    args = parser.parse_args()
    only = set(args.only or ["psoct", "lsm", "sample"])
    root = args.keep or Path(tempfile.mkdtemp(prefix="opticstream-screenshots-"))
    try:
        if "psoct" in only:
            live_session(prepare_run(root / "psoct", "psoct", "demo"), args.output)
        if "lsm" in only:
            lsm_session(prepare_run(root / "lsm", "lsm", "tiny"), args.output)
        if "sample" in only:
            sample_session(args.output)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


main()
