"""Benchmark of the GUI's event loop while the engine processes a live simulated acquisition.

Runs what ``opticstream demo`` runs (napari, the OpticStream dock widget, the simulator writing
raw tiles at a pace, the engine processing them and mosaics growing as layers) and measures the
event loop with a 10 ms QTimer: each gap between two of its timeouts beyond 10 ms is time the
loop could not serve events (a stall). Prints the longest stall, the 99th percentile and the
largest stalls with what the run was doing then. The goal is no stall above 100 ms.

As an operator would, it loads the project's config first and presses Start once the widget has
made the project's layers (which it does on load); the stalls while the project opens and those
while the engine processes are reported apart, as the goal is about the latter.

``--cancel-after`` stops the run that many seconds after processing starts (tiles still in
flight) and reports how long the engine took to stop.

Needs a display; without DISPLAY it starts Xvfb itself (pyvirtualdisplay, from pytest-xvfb).
Never use QT_QPA_PLATFORM=offscreen: napari cannot draw there. Run, for example::

    .venv/bin/python benchmarks/bench_gui_responsiveness.py --size demo --slices 2 --pace 0.5
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from _machine import machine_line

TIMER_MS = 10
GOAL_MS = 100.0


@dataclass
class Result:
    modality: str
    size: str
    slices: int
    pace: float
    executor: str
    simulator: str
    seconds: float = 0.0
    samples: int = 0
    longest_stall_ms: float = 0.0
    p99_stall_ms: float = 0.0
    p95_stall_ms: float = 0.0
    median_stall_ms: float = 0.0
    stalls_over_goal: int = 0
    steady_longest_ms: float = 0.0
    steady_p99_ms: float = 0.0
    steady_over_goal: int = 0
    layer_creations: int = 0
    layers_made_s: float = 0.0
    after_layers_longest_ms: float = 0.0
    after_layers_p99_ms: float = 0.0
    after_layers_over_goal: int = 0
    opening_s: float = 0.0
    opening_longest_ms: float = 0.0
    opening_over_goal: int = 0
    processing_longest_ms: float = 0.0
    processing_p99_ms: float = 0.0
    processing_over_goal: int = 0
    worst: list[dict[str, Any]] = field(default_factory=list)
    worst_after_layers: list[dict[str, Any]] = field(default_factory=list)
    layers: int = 0
    completed_units: int = 0
    unit: str = "tile"
    cancel_ms: float | None = None
    slots_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    machine: str = ""


class StallMeter:
    """A 10 ms QTimer; a gap longer than its interval is time the event loop was busy elsewhere."""

    def __init__(self, phase: list[str]) -> None:
        from qtpy.QtCore import QTimer

        self.gaps: list[tuple[float, float, str]] = []  # (at seconds, stall ms, phase)
        self.spans: list[tuple[float, float]] = []  # perf_counter interval of each gap
        self._phase = phase
        self._start = self._last = time.perf_counter()
        self._timer = QTimer()
        self._timer.setInterval(TIMER_MS)
        self._timer.timeout.connect(self._tick)
        self._timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        stall = max(0.0, (now - self._last) * 1000 - TIMER_MS)
        self.gaps.append((now - self._start, stall, self._phase[0]))
        self.spans.append((self._last, now))
        self._last = now

    def stop(self) -> None:
        self._timer.stop()


class StackSampler:
    """With ``--stacks``: while the event loop has not ticked for 50 ms, sample every thread's
    innermost Python frames every 5 ms, to say what the GUI thread was doing in a stall that none
    of the timed slots explains (and which other threads were running Python code meanwhile).

    The sampler needs the interpreter lock itself, so how late it wakes says how contended the lock is.
    """

    def __init__(self, meter: StallMeter) -> None:
        self.samples: list[tuple[float, float, str, str]] = []  # (at, wake-up lateness ms, GUI, others)
        self._meter = meter
        self._gui = threading.get_ident()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-stack-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import sys
        import traceback

        names = {t.ident: t.name for t in threading.enumerate()}
        while not self._stop.is_set():
            asked = time.perf_counter()
            time.sleep(0.005)
            now = time.perf_counter()
            if now - self._meter._last < 0.05:
                continue
            frames = sys._current_frames()
            names.update({t.ident: t.name for t in threading.enumerate()})

            def where(frame: Any, depth: int) -> str:
                stack = traceback.extract_stack(frame)[-depth:]
                return " < ".join(f"{Path(f.filename).stem}.{f.name}:{f.lineno}" for f in reversed(stack))

            gui = where(frames[self._gui], 3) if self._gui in frames else "?"
            others = "; ".join(
                f"{names.get(ident, ident)}: {where(frame, 1)}" for ident, frame in frames.items()
                if ident not in (self._gui, threading.get_ident()) and not _idle(frame))
            self.samples.append((now, (now - asked) * 1000 - 5, gui, others))

    def during(self, start: float, end: float) -> str:
        inside = [s for s in self.samples if start <= s[0] <= end]
        if not inside:
            return ""
        counts: dict[str, int] = {}
        for _, _, gui, _ in inside:
            counts[gui] = counts.get(gui, 0) + 1
        late = max(s[1] for s in inside)
        common = sorted(counts.items(), key=lambda item: -item[1])[:2]
        busy = {o for _, _, _, others in inside for o in others.split("; ") if o}
        return (f" | {len(inside)} stack samples, sampler up to {late:.0f} ms late; GUI thread: "
                + "; ".join(f"{n}× {g}" for g, n in common)
                + (f" | other threads in Python: {'; '.join(sorted(busy)[:4])}" if busy else ""))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _idle(frame: Any) -> bool:
    """A thread parked in a wait (lock, queue, sleep, select) runs no Python code."""
    return frame.f_code.co_name in {"wait", "_wait_for_tstate_lock", "get", "select", "sleep", "poll",
                                    "accept", "_worker", "recv", "recv_bytes", "_recv", "_poll", "wait_for"}


SLOTS = {  # the widget's own work on the GUI thread, timed separately from napari's
    "ViewerLink._tick": "drain engine messages, add or update layers, refresh",
    "ViewerLink._apply": "add one layer or give it new data (napari's add_layer or data setter)",
    "ViewerLink._on_state": "merge summaries, notify",
    "OpticStreamWidget._on_state": "update the state table",
    "SceneCanvas.on_draw": "napari's canvas paint (vispy: texture uploads, first-draw shader builds)",
    "ViewerLink._defer": "rename a hidden layer; its new data waits until it is shown",
    "ViewerLink._patch": "copy regions read off the GUI thread into a held mosaic",
    "ViewerLink._queue": "queue the layers a slice scan found",
    "NapariQtNotification.show": "napari's notification pop-up (slice complete, failures)",
    "_QtMainWindow.event": "events of napari's window: repainting its widgets (layer list, controls, dock)",
}
NEW_LAYER = "ViewerLink._apply: new layer"
NEW_DATA = "ViewerLink._apply: new data"


def time_slots(
    timings: dict[str, list[float]], creations: list[tuple[float, float]], activity: list[tuple[float, float, str]]
) -> None:
    """Wrap the widget's GUI-thread slots (before any instance exists) to record their durations,
    when each new layer was being created (``creations``: perf_counter intervals), and every call
    (``activity``: interval and what), to say what ran during the largest stalls."""
    from napari._qt.dialogs.qt_notification import NapariQtNotification
    from napari._qt.qt_main_window import _QtMainWindow
    from vispy.scene import SceneCanvas

    from opticstream_napari._qt.main_widget import OpticStreamWidget
    from opticstream_napari.viewer_link import ViewerLink

    classes = {"ViewerLink": ViewerLink, "OpticStreamWidget": OpticStreamWidget, "SceneCanvas": SceneCanvas,
               "NapariQtNotification": NapariQtNotification, "_QtMainWindow": _QtMainWindow}
    for qualified in SLOTS:
        owner, name = qualified.split(".")
        cls = classes[owner]
        original = getattr(cls, name)
        bucket = timings.setdefault(qualified, [])

        def timed(self: Any, *args: Any, _original: Any = original, _bucket: list[float] = bucket,
                  _name: str = qualified) -> Any:
            split = None
            if _name == "ViewerLink._apply":
                split = NEW_DATA if self._present(args[0].key) else NEW_LAYER
            began = time.perf_counter()
            try:
                return _original(self, *args)
            finally:
                ended = time.perf_counter()
                _bucket.append((ended - began) * 1000)
                what = _name
                if split is not None:
                    timings.setdefault(split, []).append((ended - began) * 1000)
                if _name == "_QtMainWindow.event" and ended - began > 0.02:
                    what = f"{_name} {args[0].type().name}"
                if split == NEW_DATA:
                    what = f"{_name} {args[0].key[1]}"
                if split == NEW_LAYER:
                    creations.append((began, ended))
                    spec = args[0]
                    timings.setdefault(f"  {spec.kind} {spec.key[1]}", []).append((ended - began) * 1000)
                    what = f"new {spec.kind} layer {spec.key[1]}"
                activity.append((began, ended, what))

        setattr(cls, name, timed)


def time_garbage_collection(timings: dict[str, list[float]], activity: list[tuple[float, float, str]]) -> None:
    """Record Python's garbage-collection passes: a full pass over napari's objects can pause every thread."""
    started: list[float] = []

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started.append(time.perf_counter())
        elif started:
            began, ended = started.pop(), time.perf_counter()
            name = f"gc generation {info['generation']}"
            timings.setdefault(name, []).append((ended - began) * 1000)
            activity.append((began, ended, name))

    gc.callbacks.append(callback)


@contextmanager
def display() -> Iterator[None]:
    """The session's X server, or a private Xvfb when there is none."""
    if os.environ.get("DISPLAY"):
        yield
        return
    from pyvirtualdisplay import Display

    with Display(backend="xvfb", size=(1600, 1000)):
        yield


def run_until(done: Callable[[], bool]) -> None:
    """Run Qt's event loop until ``done()`` says so (asked every 100 ms)."""
    from qtpy.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    checker = QTimer()
    checker.setInterval(100)
    checker.timeout.connect(lambda: loop.quit() if done() else None)
    checker.start()
    loop.exec()
    checker.stop()


def acquire(acquisition: Any, slices: int, pace: Any, stop: Any) -> None:
    """Write the simulated raw files, as the instrument would, until done or ``stop``."""
    from opticstream_napari.cli.simulate_cmd import iter_acquisition

    for _ in iter_acquisition(acquisition, slices=slices, seed=0, pace=pace, stop=stop):
        pass


def run(args: argparse.Namespace) -> Result:
    import napari

    from opticstream_napari._qt.main_widget import OpticStreamWidget
    from opticstream_napari.cli.demo_cmd import start_instrument
    from opticstream_napari.cli.simulate_cmd import prepare_run
    from opticstream_napari.config import load_config
    from opticstream_napari.engine.executors import spawn_context
    from opticstream_napari.simulate.live import Pace
    from opticstream_napari.state.hierarchy import WORK_UNIT_LEVEL
    from opticstream_napari.viewer_link import EngineOptions, Lifecycle
    from opticstream_napari.viewer_link.layer_specs import role_placeholders

    timings: dict[str, list[float]] = {}
    creations: list[tuple[float, float]] = []
    activity: list[tuple[float, float, str]] = []
    time_slots(timings, creations, activity)
    time_garbage_collection(timings, activity)
    root = args.output
    acquisition = prepare_run(root, args.modality, args.size)
    unit = WORK_UNIT_LEVEL[args.modality]
    viewer = napari.Viewer(title="OpticStream GUI benchmark")
    viewer.window.resize(1500, 950)
    widget = OpticStreamWidget(viewer)
    viewer.window.add_dock_widget(widget, name="OpticStream", area="right")
    widget.link.options = EngineOptions(stability_seconds=0.5, poll_interval=0.2, incomplete_grace=30.0,
                                        processes=args.executor == "processes")
    phase = ["opening the project"]
    meter = StallMeter(phase)
    sampler = StackSampler(meter) if args.stacks else None
    opening = time.perf_counter()
    widget.config_panel.load(acquisition.config_path)
    roles = {spec.key for spec in role_placeholders(load_config(acquisition.config_path))}
    run_until(lambda: (set(widget.link.layers) >= roles and not widget.link.busy)
              or time.perf_counter() - opening > args.timeout)
    pace = Pace(args.pace, 4)
    if args.simulator == "process":
        stop = spawn_context().Event()
        simulator = None
    else:
        stop = threading.Event()
        simulator = threading.Thread(target=acquire, args=(acquisition, args.slices, pace, stop),
                                     name="bench-simulator", daemon=True)
    result = Result(args.modality, args.size, args.slices, args.pace, args.executor, args.simulator,
                    machine=machine_line())
    started = time.perf_counter()
    result.opening_s = started - opening
    asked: list[float] = []

    def finished() -> bool:
        """Every 100 ms: note what the run is doing; done when complete (or cancelled)."""
        summaries = widget.link.summaries
        units = sum(s.done(unit) for s in summaries.values())
        phase[0] = f"{len(viewer.layers)} layers, {units} {unit}s done"
        now = time.perf_counter()
        if asked:
            if not widget.link.running:
                result.cancel_ms = (now - asked[0]) * 1000
                return True
            return False
        if args.cancel_after and now - started >= args.cancel_after:
            asked.append(now)
            widget.link.stop()
            return False
        complete = len(summaries) >= args.slices and all(
            s.counts["slice"][Lifecycle.COMPLETED] == 1 for s in summaries.values())
        return (complete and not widget.link.busy) or now - started > args.timeout

    if simulator is None:
        simulator = start_instrument(acquisition, args.slices, pace, stop)  # as the demo runs it
    else:
        simulator.start()
    widget.start(acquisition.raw_folder, remember=False)
    run_until(finished)
    result.seconds = time.perf_counter() - started
    meter.stop()
    if sampler is not None:
        sampler.stop()
    stop.set()
    result.layers = len(viewer.layers)
    result.completed_units = sum(s.done(unit) for s in widget.link.summaries.values())
    result.unit = unit
    viewer.close()
    simulator.join()
    stalls = [gap for _, gap, _ in meter.gaps]
    result.samples = len(stalls)
    result.longest_stall_ms = max(stalls)
    result.p99_stall_ms = _percentile(stalls, 0.99)
    result.p95_stall_ms = _percentile(stalls, 0.95)
    result.median_stall_ms = statistics.median(stalls)
    result.stalls_over_goal = sum(1 for s in stalls if s > GOAL_MS)
    steady = [gap for gap, (a, b) in zip(stalls, meter.spans, strict=True)
              if not any(a < end and start < b for start, end in creations)]
    result.layer_creations = len(creations)
    made = max((end for _, end in creations), default=meter.spans[0][0])
    result.layers_made_s = made - meter.spans[0][0]
    after = [gap for gap, (a, _) in zip(stalls, meter.spans, strict=True) if a >= made]
    if after:
        result.after_layers_longest_ms = max(after)
        result.after_layers_p99_ms = _percentile(after, 0.99)
        result.after_layers_over_goal = sum(1 for s in after if s > GOAL_MS)
    before = [gap for gap, (a, _) in zip(stalls, meter.spans, strict=True) if a < started]
    during = [gap for gap, (a, _) in zip(stalls, meter.spans, strict=True) if a >= started]
    result.opening_longest_ms = max(before, default=0.0)
    result.opening_over_goal = sum(1 for s in before if s > GOAL_MS)
    result.processing_longest_ms = max(during)
    result.processing_p99_ms = _percentile(during, 0.99)
    result.processing_over_goal = sum(1 for s in during if s > GOAL_MS)
    result.steady_longest_ms = max(steady)
    result.steady_p99_ms = _percentile(steady, 0.99)
    result.steady_over_goal = sum(1 for s in steady if s > GOAL_MS)
    def described(indices: list[int]) -> list[dict[str, Any]]:
        """The largest of these stalls, with what ran during each."""
        items = []
        for i in sorted(indices, key=lambda i: meter.gaps[i][1], reverse=True)[: args.worst]:
            at, ms, what = meter.gaps[i]
            start, end = meter.spans[i]
            inside = [f"{name} {1000 * (b - a):.0f} ms" for a, b, name in activity
                      if a < end and start < b and b - a > 0.02]
            stacks = sampler.during(start, end) if sampler is not None else ""
            items.append({"at_s": round(at, 2), "stall_ms": round(ms, 1), "during": what,
                          "in": ("; ".join(inside) or "none of the timed slots") + stacks})
        return items

    result.worst = described(list(range(len(meter.gaps))))
    result.worst_after_layers = described([i for i, (a, _) in enumerate(meter.spans) if a >= made])
    result.slots_ms = {
        name: {"calls": len(values), "max": round(max(values), 1), "p99": round(_percentile(values, 0.99), 1)}
        for name, values in timings.items() if values
    }
    return result


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))]


def report(result: Result) -> None:
    print(result.machine)
    print(f"run: {result.modality} {result.size} preset, {result.slices} slice(s), pace {result.pace} s per raw file, "
          f"engine work in {result.executor}, simulator in a {result.simulator}"
          f"{' (nice 19)' if result.simulator == 'process' else ''}, "
          f"{result.seconds:.1f} s, {result.completed_units} {result.unit}s completed, "
          f"{result.layers} layers")
    print(f"event-loop samples: {result.samples} (QTimer every {TIMER_MS} ms)")
    print(f"opening the project (config loaded, layers made, before Start; {result.opening_s:.1f} s): "
          f"longest {result.opening_longest_ms:.1f} ms; {result.opening_over_goal} above {GOAL_MS:.0f} ms")
    print(f"processing (from Start to the end): longest {result.processing_longest_ms:.1f} ms, "
          f"p99 {result.processing_p99_ms:.1f} ms; {result.processing_over_goal} above {GOAL_MS:.0f} ms")
    print(f"stall: longest {result.longest_stall_ms:.1f} ms, p99 {result.p99_stall_ms:.1f} ms, "
          f"p95 {result.p95_stall_ms:.1f} ms, median {result.median_stall_ms:.1f} ms; "
          f"{result.stalls_over_goal} above {GOAL_MS:.0f} ms")
    print(f"without the {result.layer_creations} gaps in which napari created a layer (once per layer role, "
          f"not per slice): longest {result.steady_longest_ms:.1f} ms, p99 {result.steady_p99_ms:.1f} ms; "
          f"{result.steady_over_goal} above {GOAL_MS:.0f} ms")
    print(f"after the last layer was made ({result.layers_made_s:.1f} s in): longest "
          f"{result.after_layers_longest_ms:.1f} ms, p99 {result.after_layers_p99_ms:.1f} ms; "
          f"{result.after_layers_over_goal} above {GOAL_MS:.0f} ms")
    for title, items in (("largest stalls:", result.worst),
                         ("largest stalls after the last layer was made:", result.worst_after_layers)):
        print(title)
        for item in items:
            print(f"  {item['stall_ms']:7.1f} ms at {item['at_s']:6.2f} s  ({item['during']}): {item['in']}")
    print("time in the widget's own GUI-thread slots (ms):")
    for name, figures in result.slots_ms.items():
        print(f"  {name:34s} {figures['calls']:5d} calls, max {figures['max']:7.1f}, p99 {figures['p99']:6.1f}"
              f"  {SLOTS.get(name, '')}")
    if result.cancel_ms is not None:
        print(f"cancel: the engine stopped {result.cancel_ms:.0f} ms after Stop")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modality", choices=["psoct", "lsm"], default="psoct")
    parser.add_argument("--size", choices=["tiny", "demo"], default="demo")
    parser.add_argument("--slices", type=int, default=2)
    parser.add_argument("--pace", type=float, default=0.5, help="seconds per raw file")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up after this many seconds")
    parser.add_argument("--cancel-after", type=float, default=None, help="stop the engine after this many seconds")
    parser.add_argument("--worst", type=int, default=8, help="how many of the largest stalls to list")
    parser.add_argument("--executor", choices=["processes", "threads"], default="processes",
                        help="where the engine's work runs (the widget uses processes)")
    parser.add_argument("--simulator", choices=["process", "thread"], default="process",
                        help="where the simulated instrument runs: its own process at the lowest priority, as "
                             "the demo runs it, or a thread of the GUI process at normal priority (sharing the "
                             "interpreter lock), as the demo ran it before session 6")
    parser.add_argument("--stacks", action="store_true",
                        help="sample the threads' Python stacks during stalls (adds some lock traffic)")
    parser.add_argument("--output", type=Path,
                        help="folder for the simulated project, kept (default: a temporary one, removed; ~3 GB)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    keep = args.output is not None
    args.output = args.output or Path(tempfile.mkdtemp(prefix="opticstream-bench-gui-"))
    try:
        with display():
            result = run(args)
    finally:
        if not keep:
            shutil.rmtree(args.output, ignore_errors=True)
    report(result)
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=2))


if __name__ == "__main__":
    main()
