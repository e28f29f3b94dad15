"""What each dask worker of an engine run sets up before its first task."""

from __future__ import annotations

import logging
from typing import Any

from distributed import WorkerPlugin

from opticstream_napari.engine.vector_width import use_wide_vectors

log = logging.getLogger(__name__)


class VectorWidth(WorkerPlugin):
    """Compile for the engine process's numba vector width, so the worker computes the same bytes.

    A worker that has compiled numba code before (a shared cluster) keeps its width and says so.
    """

    def __init__(self, width: int) -> None:
        self.width = width

    def setup(self, worker: Any) -> None:
        got = use_wide_vectors(str(self.width))
        if got != self.width:
            log.warning("dask worker %s compiles for %d-bit vectors, the engine for %d: its outputs "
                        "may differ from the engine's in the last bit", worker.address, got, self.width)
