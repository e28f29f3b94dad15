"""What one repaint of napari's window costs, by window size and by the number of layers.

The stalls left in ``bench_gui_responsiveness.py`` once the layers exist are napari's window
handling ``UpdateRequest`` events (repainting and compositing). This script isolates that cost:
a napari viewer with the OpticStream project's layer roles (or none), one visible 1400 × 2000
float32 mosaic, and three triggers, each repeated and timed inside the window's event handler:

- a text change in a dock widget (Qt repaints a label and composites the window),
- a canvas update (napari redraws every layer's state, vispy draws),
- a refresh of the visible mosaic (napari re-slices it, then both of the above).

Needs a display; without DISPLAY it starts Xvfb itself. Run, for example::

    .venv/bin/python benchmarks/bench_gui_repaint.py
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _machine import machine_line
from bench_gui_responsiveness import display

SIZES = ((1500, 950), (800, 600))
SETTLE_S = 0.05


def measure(size: tuple[int, int], with_roles: bool, repeats: int) -> dict[str, list[float]]:
    """Median-ready durations (ms) of the window's UpdateRequest handling per trigger."""
    import napari
    import numpy as np
    from napari._qt.qt_main_window import _QtMainWindow
    from qtpy.QtCore import QEvent
    from qtpy.QtWidgets import QApplication, QLabel

    from opticstream_napari.cli.simulate_cmd import prepare_run
    from opticstream_napari.config import load_config
    from opticstream_napari.viewer_link.layer_specs import role_placeholders

    root = Path(tempfile.mkdtemp(prefix="opticstream-bench-repaint-"))
    try:
        config = load_config(prepare_run(root, "psoct", "demo").config_path)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    viewer = napari.Viewer(title="OpticStream repaint benchmark")
    viewer.window.resize(*size)
    label = QLabel("0")
    viewer.window.add_dock_widget(label, name="status", area="right")
    app = QApplication.instance()
    if with_roles:
        for spec in role_placeholders(config):
            adder = {"image": viewer.add_image, "labels": viewer.add_labels, "shapes": viewer.add_shapes}[spec.kind]
            adder(spec.data, **spec.kwargs)
            app.processEvents()
    mosaic = viewer.add_image(np.random.default_rng(0).random((1400, 2000), dtype=np.float32), name="mosaic")

    durations: dict[str, list[float]] = {}
    current = ["settling"]
    original = _QtMainWindow.event

    def timed(window: _QtMainWindow, event: QEvent) -> bool:
        began = time.perf_counter()
        try:
            return original(window, event)
        finally:
            if event.type() == QEvent.Type.UpdateRequest:
                durations.setdefault(current[0], []).append((time.perf_counter() - began) * 1000)

    def settle() -> None:
        until = time.perf_counter() + SETTLE_S
        while time.perf_counter() < until:
            app.processEvents()

    triggers: dict[str, Callable[[int], None]] = {
        "dock label text": lambda i: label.setText(str(i)),
        "canvas update": lambda _: viewer.window._qt_viewer.canvas._scene_canvas.update(),
        "refresh visible mosaic": lambda _: mosaic.refresh(),
    }
    _QtMainWindow.event = timed
    try:
        for _ in range(10):
            settle()
        for name, trigger in triggers.items():
            current[0] = name
            for i in range(repeats):
                trigger(i)
                settle()
    finally:
        _QtMainWindow.event = original
        layers = len(viewer.layers)
        viewer.close()
    durations.pop("settling", None)
    durations["layers"] = [float(layers)]
    return durations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args()
    print(machine_line())
    print("median / max ms of the window's UpdateRequest handling after each trigger")
    with display():
        for size in SIZES:
            for with_roles in (True, False):
                found = measure(size, with_roles, args.repeats)
                layers = int(found.pop("layers")[0])
                cells = ", ".join(f"{name} {statistics.median(v):5.1f} / {max(v):5.1f}" for name, v in found.items())
                print(f"window {size[0]}×{size[1]}, {layers:2d} layers: {cells}")


if __name__ == "__main__":
    main()
