"""The engine's thread in the GUI process: a lower CPU priority, inherited by what it starts."""

from __future__ import annotations

import os
import threading

from opticstream_napari.engine.priority import lower_priority
from opticstream_napari.viewer_link.engine_run import EngineOptions


def _priority() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_the_engine_thread_runs_below_the_gui_and_its_threads_inherit_that() -> None:
    """napari keeps the GUI thread at the process's nice value; the engine's thread drops to the
    options' value and a thread it starts (its pools, the workers it spawns) starts there too."""
    seen: dict[str, int] = {}

    def engine_thread() -> None:
        seen["before"] = _priority()
        seen["returned"] = lower_priority(EngineOptions().nice)
        seen["after"] = _priority()
        child = threading.Thread(target=lambda: seen.__setitem__("child", _priority()))
        child.start()
        child.join()

    gui = _priority()
    worker = threading.Thread(target=engine_thread)
    worker.start()
    worker.join()
    assert seen["returned"] == seen["before"] == gui
    assert seen["after"] == seen["child"] == max(gui, EngineOptions().nice) == 19
    assert _priority() == gui, "only the engine's thread is lowered, not the GUI thread"
