"""What each dask worker of an engine run sets up before its first task."""

from __future__ import annotations

import logging
from typing import Any

from distributed import WorkerPlugin

from opticstream_napari.engine.vector_width import use_wide_vectors, width_for

log = logging.getLogger(__name__)


class VectorWidth(WorkerPlugin):
    """Apply the engine's vector-width choice before the worker compiles, so it computes the same bytes.

    A worker that has compiled numba code before (a shared cluster) keeps its width and says so
    when that is not the width the choice gives.
    """

    def __init__(self, choice: str) -> None:
        self.choice = choice

    def setup(self, worker: Any) -> None:
        got = use_wide_vectors(self.choice)
        wanted = width_for(self.choice)
        if got != wanted:
            log.warning("dask worker %s compiles for %d-bit vectors, not %d (numba was set up before the engine "
                        "asked): its outputs may differ from other processes' in the last bit", worker.address, got,
                        wanted)
