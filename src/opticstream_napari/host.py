"""What this host offers a process: the cores it may run on and the memory it can still take."""

from __future__ import annotations

import os
from pathlib import Path

MEMINFO = Path("/proc/meminfo")


def usable_cores() -> int:
    """The cores this process may run on (its affinity, which container limits narrow)."""
    return len(os.sched_getaffinity(0))


def available_memory() -> int:
    """Bytes that can be allocated without swapping: the kernel's ``MemAvailable`` (free memory
    plus the page cache it can drop), or the free pages where that figure is missing."""
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
