"""`opticstream demo`: the main job on embedded defaults, with a live simulated acquisition.

With a display it opens napari with the OpticStream dock widget; ``--headless`` runs the same
simulated acquisition in the terminal for machines without one.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
from pathlib import Path

from opticstream_napari.cli.main import EXIT_USAGE, CommandError
from opticstream_napari.cli.simulate_cmd import SimulatedRun, iter_acquisition, prepare_run
from opticstream_napari.simulate.live import Pace


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
    root = args.output or Path(tempfile.mkdtemp(prefix="opticstream-demo-"))
    run = prepare_run(root, args.modality, args.size)
    print(f"demo folder: {root}\nscan config: {run.config_path}")
    stop = threading.Event()
    pace = Pace(args.pace, pieces=4 if args.pace > 0 else 1)
    if args.headless:
        return _run_headless(run, args.slices, pace, stop, args.quit_after)
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        raise CommandError(
            "no display found (DISPLAY is unset): use --headless, or run under xvfb-run",
            EXIT_USAGE,
        )
    return _run_gui(run, args.slices, pace, stop, args.quit_after)


def _simulate(run: SimulatedRun, slices: int, pace: Pace, stop: threading.Event) -> threading.Thread:
    def write() -> None:
        for path in iter_acquisition(run, slices=slices, seed=0, pace=pace, stop=stop):
            print(f"acquired {path.relative_to(run.root)}", flush=True)

    thread = threading.Thread(target=write, name="opticstream-simulator", daemon=True)
    thread.start()
    return thread


def _run_headless(
    run: SimulatedRun, slices: int, pace: Pace, stop: threading.Event, quit_after: float | None
) -> int:
    thread = _simulate(run, slices, pace, stop)
    thread.join(quit_after)
    stop.set()
    thread.join()
    return 0


def _run_gui(
    run: SimulatedRun, slices: int, pace: Pace, stop: threading.Event, quit_after: float | None
) -> int:
    import napari
    from qtpy.QtCore import QTimer

    from opticstream_napari._qt.main_widget import OpticStreamWidget

    viewer = napari.Viewer(title="OpticStream demo")
    widget = OpticStreamWidget(viewer)
    viewer.window.add_dock_widget(widget, name="OpticStream", area="right")
    widget.config_panel.load(run.config_path)
    thread = _simulate(run, slices, pace, stop)
    if quit_after is not None:
        QTimer.singleShot(int(quit_after * 1000), viewer.close)
    napari.run()
    stop.set()
    thread.join()
    return 0
