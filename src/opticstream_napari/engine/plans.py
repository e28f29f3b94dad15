"""The same FFT plans in every worker process, so a tile gives the same bytes wherever it runs.

The reconstruction plans its FFTs with FFTW_MEASURE, which picks an algorithm by timing it: two
processes (dask workers, an engine restarted after a crash) may pick different ones and round
the last bits differently, which is enough to turn the orientation of near-zero signal
around. FFTW's *wisdom* records the choices; a process that imports it before planning gets
the same plans. So the first tile of each geometry in each process runs under an exclusive
file lock: import the shared wisdom, process the tile (planning what is missing), export the
merged wisdom. Later tiles run without the lock.

The wisdom file is ``$OPTICSTREAM_FFTW_WISDOM`` when set (one file shared by several projects or
hosts), else ``fftw-wisdom.json`` in the project folder. Hosts sharing one file should have the
same CPU model, or the plans are not optimal for some of them (they stay correct).
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from pathlib import Path

from opticstream_napari.io.atomic import atomic_write_text
from opticstream_napari.naming import FFTW_WISDOM_FILE

WISDOM_ENV = "OPTICSTREAM_FFTW_WISDOM"

_planned: set[tuple[str, Hashable]] = set()
_guard = threading.Lock()


def wisdom_path(project_base: Path) -> Path:
    return Path(os.environ.get(WISDOM_ENV) or Path(project_base) / FFTW_WISDOM_FILE)


@contextmanager
def shared_plans(path: Path, geometry: Hashable) -> Iterator[None]:
    """Run the block with the shared plans; the first block per (file, geometry) in this process
    imports and exports the wisdom under the file lock."""
    key = (str(path), geometry)
    if key in _planned:
        yield
        return
    import pyfftw

    with _guard, _file_lock(path.with_name(path.name + ".lock")):
        if path.is_file():
            pyfftw.import_wisdom(tuple(part.encode("ascii") for part in json.loads(path.read_text())))
        yield
        atomic_write_text(path, json.dumps([part.decode("ascii") for part in pyfftw.export_wisdom()]))
        _planned.add(key)


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
