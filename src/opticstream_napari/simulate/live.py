"""Writing raw files the way an instrument does: in place, growing, at a set pace.

Watchers must cope with files that exist before they are complete; the simulator reproduces
that by appending a file in several pieces with pauses between them.
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np


class StopSignal(Protocol):
    """What ends a simulated acquisition early: a ``threading`` or a ``multiprocessing`` event."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


@dataclass(frozen=True, slots=True)
class Pace:
    """How fast files appear: seconds per file, split across ``pieces`` appends."""

    seconds_per_file: float = 0.0
    pieces: int = 1

    def __post_init__(self) -> None:
        if self.seconds_per_file < 0 or self.pieces < 1:
            raise ValueError(
                f"pace needs seconds_per_file >= 0 and pieces >= 1, found "
                f"{self.seconds_per_file} and {self.pieces}"
            )

    @property
    def is_live(self) -> bool:
        return self.seconds_per_file > 0


INSTANT = Pace()


def write_progressively(
    path: Path,
    data: bytes | memoryview | np.ndarray,
    pace: Pace = INSTANT,
    stop: StopSignal | None = None,
) -> bool:
    """Append ``data`` to ``path`` in ``pace.pieces`` parts; False if ``stop`` cut it short."""
    view = memoryview(np.ascontiguousarray(data).view(np.uint8).reshape(-1)
                      if isinstance(data, np.ndarray) else data).cast("B")
    size = len(view)
    bounds = np.linspace(0, size, pace.pieces + 1).astype(np.int64)
    pause = pace.seconds_per_file / pace.pieces
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        for start, end in itertools.pairwise(bounds):
            handle.write(view[start:end])
            handle.flush()
            if pause and end < size and _wait(pause, stop):
                return False
        os.fsync(handle.fileno())
    if pause:
        return not _wait(pause, stop)
    return True


def _wait(seconds: float, stop: StopSignal | None) -> bool:
    """Sleep; True when asked to stop."""
    if stop is None:
        time.sleep(seconds)
        return False
    return stop.wait(seconds)
