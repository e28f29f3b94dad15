"""`opticstream demo`: the main job on embedded defaults, with a live simulated acquisition.

With a display it opens napari with the OpticStream dock widget; ``--headless`` runs the same
acquisition and the engine on it in the terminal, printing progress, and exits once every node
of the simulated slices is complete.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TYPE_CHECKING

from opticstream_napari.cli.engine_cmd import use_engine_vectors
from opticstream_napari.cli.main import EXIT_USAGE, CommandError
from opticstream_napari.cli.simulate_cmd import SimulatedRun, iter_acquisition, prepare_run
from opticstream_napari.engine.executors import ignore_interrupts, spawn_context
from opticstream_napari.engine.priority import LOWEST, lower_priority
from opticstream_napari.simulate.live import Pace, StopSignal

if TYPE_CHECKING:
    from opticstream_napari.engine.runner import RunReport


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="napari with the OpticStream widget on a live simulated PS-OCT acquisition",
        description="Simulate a live PS-OCT acquisition into a folder and open napari on it.",
    )
    parser.add_argument("--headless", action="store_true", help="no GUI: run in the terminal")
    parser.add_argument("--output", type=Path, help="folder to use (default: a new temporary one)")
    parser.add_argument("--modality", choices=["psoct", "lsm"], default="psoct")
    parser.add_argument("--size", choices=["tiny", "demo"], default="demo")
    parser.add_argument("--slices", type=int, default=2)
    parser.add_argument("--pace", type=float, default=0.5, help="seconds per raw file")
    parser.add_argument(
        "--quit-after", type=float, default=None, help="close after this many seconds (for tests)"
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    if not args.headless and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        raise CommandError(
            "no display found (DISPLAY is unset): use --headless, or run under xvfb-run",
            EXIT_USAGE,
        )
    if args.headless:  # the engine's threads compute in this process (the GUI's worker processes choose alike)
        use_engine_vectors()
    root = args.output or Path(tempfile.mkdtemp(prefix="opticstream-demo-"))
    try:
        run = prepare_run(root, args.modality, args.size)
        kept = "kept" if args.output else "removed at exit; --output keeps one"
        print(f"demo folder: {root} ({kept})\nscan config: {run.config_path}")
        stop = spawn_context().Event()
        pace = Pace(args.pace, pieces=4 if args.pace > 0 else 1)
        if args.headless:
            return _run_headless(run, args.slices, pace, stop, args.quit_after)
        return _run_gui(run, args.slices, pace, stop, args.quit_after)
    finally:
        if args.output is None:  # a two-slice demo writes about 3 GB
            shutil.rmtree(root, ignore_errors=True)


def start_instrument(run: SimulatedRun, slices: int, pace: Pace, stop: StopSignal) -> BaseProcess:
    """The simulated instrument, in its own process at the lowest CPU priority.

    A real instrument writes from its own computer; the simulator's forward model takes about a
    core, which in the viewer's process or at normal priority would compete with napari's
    drawing (and, in a thread, with its interpreter lock). ``stop`` is a ``spawn_context()`` event.
    """
    process = spawn_context().Process(target=_acquire, args=(run, slices, pace, stop),
                                      name="opticstream-simulator", daemon=True)
    process.start()
    return process


def _acquire(run: SimulatedRun, slices: int, pace: Pace, stop: StopSignal) -> None:
    ignore_interrupts()  # the demo stops it through ``stop``
    lower_priority(LOWEST)
    for path in iter_acquisition(run, slices=slices, seed=0, pace=pace, stop=stop):
        print(f"acquired {path.relative_to(run.root)}", flush=True)


def _run_headless(
    run: SimulatedRun, slices: int, pace: Pace, stop: StopSignal, quit_after: float | None
) -> int:
    """Simulate and process at once; exit when every node of the simulated slices is complete."""
    from opticstream_napari.cli.engine_cmd import EXIT_UNITS_FAILED, log_to_file

    with log_to_file(run.config):
        report = _process_live(run, slices, pace, stop, quit_after)
    if report.failed:
        return EXIT_UNITS_FAILED
    print("stopped before the acquisition was processed" if report.stopped else "every slice is processed")
    return 0


def _process_live(
    run: SimulatedRun, slices: int, pace: Pace, stop: StopSignal, quit_after: float | None
) -> RunReport:
    from opticstream_napari.cli.progress import ProgressLine
    from opticstream_napari.engine.executors import LocalExecutor
    from opticstream_napari.engine.runner import Engine, Until
    from opticstream_napari.state.service import StateService

    state = StateService.for_config(run.config)
    executor = LocalExecutor()
    instrument = start_instrument(run, slices, pace, stop)
    try:
        engine = Engine(run.config, run.raw_folder, state, executor, stability_seconds=0.5, poll_interval=0.2,
                        incomplete_grace=30.0)
        progress = ProgressLine("demo")
        engine.add_listener(progress)
        if quit_after is not None:
            timer = threading.Timer(quit_after, engine.stop)
            timer.daemon = True
            timer.start()
        report = engine.run(until=Until.COMPLETE, slices=slices)
        progress.finish()
    finally:
        stop.set()
        instrument.join()
        executor.close()
        state.close()
    return report


def _run_gui(
    run: SimulatedRun, slices: int, pace: Pace, stop: StopSignal, quit_after: float | None
) -> int:
    """napari with the dock widget processing the acquisition as it is written (short watcher delays)."""
    import napari
    from qtpy.QtCore import QTimer

    from opticstream_napari._qt.main_widget import OpticStreamWidget
    from opticstream_napari.viewer_link import EngineOptions

    viewer = napari.Viewer(title="OpticStream demo")
    widget = OpticStreamWidget(viewer)
    viewer.window.add_dock_widget(widget, name="OpticStream", area="right")
    widget.link.options = EngineOptions(stability_seconds=0.5, poll_interval=0.2, incomplete_grace=30.0)
    widget.config_panel.load(run.config_path)  # the widget starts making the project's layers
    instrument = start_instrument(run, slices, pace, stop)

    def start_once_the_layers_exist() -> None:
        """As an operator would: Start once the layers are there, so making them (0.1-0.7 s each)
        does not stall the viewer while tiles are processed; the acquisition runs meanwhile."""
        if not widget.link.making_layers:
            waiting.stop()
            print(f"{len(widget.link.layers)} layers made; processing {run.raw_folder.name}/", flush=True)
            widget.start(run.raw_folder, remember=False)

    waiting = QTimer(widget)  # the widget's: it never fires once the window is closed
    waiting.setInterval(100)
    waiting.timeout.connect(start_once_the_layers_exist)
    waiting.start()
    if quit_after is not None:
        QTimer.singleShot(int(quit_after * 1000), viewer.close)
    try:
        napari.run()
    finally:  # on Ctrl-C too: the instrument must stop writing before the demo folder is removed
        stop.set()
        instrument.join()
    return 0
