"""One engine run on a napari worker thread: retries first, then watching until stopped."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from napari.qt.threading import FunctionWorker
from napari.utils import cancelable_progress

from opticstream_napari.engine.executors import LocalExecutor, ProcessExecutor
from opticstream_napari.engine.messages import EngineMessage
from opticstream_napari.engine.priority import LOWEST, lower_priority
from opticstream_napari.engine.runner import Engine, RunReport
from opticstream_napari.identity import Identity
from opticstream_napari.state.service import StateService
from opticstream_napari.viewer_link.layer_specs import ScanConfigModel


@dataclass(frozen=True, slots=True)
class EngineOptions:
    """How the GUI runs the engine: a short poll keeps Stop prompt, a lower priority keeps the GUI fluid."""

    stability_seconds: float = 15.0
    poll_interval: float = 0.5
    incomplete_grace: float = 120.0
    workers: int | None = None
    processes: bool = True  # the work cannot hold the GUI's interpreter lock
    nice: int = LOWEST  # the engine's threads yield the CPU to the GUI thread on a busy machine


@dataclass(slots=True)
class EngineRun:
    """One engine run as both threads see it: what to do, and the events that end it."""

    config: ScanConfigModel
    raw_folder: Path | None
    watch: bool
    force: bool = False
    retries: tuple[Identity, ...] = ()
    stop: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    engine: Engine | None = None

    def request_stop(self) -> None:
        """Stop now: the engine ends its work in flight (pending again for the next run) and returns."""
        if self.engine is not None:
            self.engine.stop(abandon=True)  # before the event, so the run sees ``abandon`` when it wakes
        self.stop.set()


def run_engine(run: EngineRun, options: EngineOptions, listener: Callable[[EngineMessage], None]) -> RunReport:
    """Retry what was asked, then watch until stopped; executor and connections close on the way out."""
    report = RunReport()
    before = lower_priority(options.nice)
    try:
        state = StateService.for_config(run.config)
        executor = (ProcessExecutor if options.processes else LocalExecutor)(options.workers)
        try:
            engine = Engine(run.config, run.raw_folder, state, executor, force=run.force,
                            stability_seconds=options.stability_seconds, poll_interval=options.poll_interval,
                            incomplete_grace=options.incomplete_grace)
            engine.add_listener(listener)
            run.engine = engine
            for ident in run.retries:
                if not run.stop.is_set():
                    report = engine.retry(ident, run.stop)
            if run.watch and not run.stop.is_set():
                report = engine.run(run.stop)
        finally:
            executor.close()
            state.close()
    finally:
        lower_priority(before)
        run.done.set()
    return report


class EngineWorker(FunctionWorker):
    """napari's worker, with ``quit`` (the window's task cancel, closing napari) stopping the engine."""

    def __init__(self, func: Callable[..., Any], run: EngineRun, *args: Any, **kwargs: Any) -> None:
        super().__init__(func, run, *args, **kwargs)
        self.engine_run = run

    def quit(self) -> None:
        self.engine_run.request_stop()
        super().quit()


class RunProgress(cancelable_progress):
    """The activity-dock bar of a run; its Cancel button stops the engine at once."""

    def cancel(self) -> None:
        super().cancel()
        if self.cancel_callback is not None:
            self.cancel_callback()
