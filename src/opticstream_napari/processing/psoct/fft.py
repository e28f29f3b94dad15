"""FFT along k on chunks of rows, one plan per worker thread: FFTW, or scipy without it.

FFTW is fastest on L2-sized batches (~64 rows of 2048 here) and its plans are not
thread-safe, so each worker keeps its own plans and points them at slices of its buffers.
"""

from __future__ import annotations

import threading

import numpy as np
import numpy.typing as npt

try:
    import pyfftw
except ImportError:  # pragma: no cover - pyfftw is in the lock; scipy is the portable path
    pyfftw = None

_local = threading.local()
ALIGNMENT = 64


def aligned_empty(shape: tuple[int, ...], dtype: npt.DTypeLike) -> npt.NDArray[np.generic]:
    if pyfftw is not None:
        return pyfftw.empty_aligned(shape, dtype=dtype, n=ALIGNMENT)
    return np.empty(shape, dtype=dtype)


class KTransform:
    """Forward complex FFT along the last axis of (rows, L) complex64 arrays.

    Always complex: two real spectra packed as one complex row cost one transform, which this
    FFTW runs faster than the two real-input transforms it replaces.
    """

    def __init__(self, rows: int, length: int) -> None:
        self.rows = rows
        self.length = length
        self._plan = None
        if pyfftw is not None:
            probe_in = aligned_empty((rows, length), np.complex64)
            probe_out = aligned_empty((rows, length), np.complex64)
            self._plan = pyfftw.FFTW(
                probe_in, probe_out, axes=(1,), flags=("FFTW_MEASURE", "FFTW_DESTROY_INPUT"),
                threads=1,
            )

    def __call__(self, source: npt.NDArray[np.generic], out: npt.NDArray[np.complex64]) -> None:
        """Transform ``source`` into ``out``, both (rows, L) with 64-byte aligned rows.

        ``source`` may be overwritten (FFTW_DESTROY_INPUT leaves FFTW the most algorithms).
        """
        if self._plan is not None:
            self._plan.update_arrays(source, out)
            self._plan.execute()
            return
        import scipy.fft

        out[:] = scipy.fft.fft(source, axis=1, workers=1)


def k_transform(rows: int, length: int) -> KTransform:
    """This thread's plan for the given shape, created once."""
    cache: dict[tuple[int, int], KTransform] = _local.__dict__.setdefault("plans", {})
    key = (rows, length)
    if key not in cache:
        cache[key] = KTransform(rows, length)
    return cache[key]
