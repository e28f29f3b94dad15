"""The machine line every benchmark prints, so figures from different runs can be compared.

Importing this module, before any kernel module, sets numba's vector width as the engine's
worker processes and headless commands set theirs (``OPTICSTREAM_VECTOR_WIDTH`` overrides), so
the benchmarks measure the code the engine runs.
"""

from __future__ import annotations

import os
import platform
import resource

from opticstream_napari.engine.vector_width import use_wide_vectors

VECTOR_WIDTH = use_wide_vectors()


def machine_line() -> str:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0))
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return (
        f"machine: {model}, {cores} cores, {memory_gib:.0f} GiB, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}, numba vectors {VECTOR_WIDTH}-bit, "
        f"load average {load}"
    )


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
