"""CPU priority for background work, so that a viewer on the same machine keeps the CPU it needs."""

from __future__ import annotations

import contextlib
import os
import threading

LOWEST = 19


def lower_priority(nice: int) -> int:
    """Set this thread's nice value (Linux keeps one per thread; threads and processes started
    from it inherit it). Returns the previous value.

    Raising the priority back may be refused to an unprivileged user; the thread then stays
    low, which only ever runs background work.
    """
    if not hasattr(os, "setpriority"):
        return 0
    thread = threading.get_native_id()
    before = os.getpriority(os.PRIO_PROCESS, thread)
    with contextlib.suppress(PermissionError):
        os.setpriority(os.PRIO_PROCESS, thread, nice)
    return before
