"""Pairwise registration of two tiles on their nominal overlap.

Algorithm (after MIST/ASHLAR/BigStitcher, written from their published descriptions):

1. Phase correlation of the two overlap strips only (not the whole tiles): mean-free,
   Tukey-windowed so the strip edges do not correlate with themselves at zero shift (the flat
   middle keeps the content of large shifts, which a Hann window would fade out), zero-padded
   to a fast FFT size, real FFTs in float32 with plans and buffers reused across pairs.
2. The few highest peaks each stand for up to four shifts (the circular correlation cannot tell
   ``p`` from ``p − size``); every candidate that keeps enough of the strip overlapped is scored
   by the normalised cross-correlation (NCC) of the pixels it overlaps, and the best one wins.
3. Sub-pixel refinement by a symmetric Gauss-Newton step on the integer-aligned overlap after a
   small binomial blur of both strips. Unlike refining the windowed correlation peak, it uses
   every overlapped pixel with equal weight and has no window bias: errors stay at a few
   thousandths of a pixel on clean texture and a few hundredths on narrow or noisy strips.

The NCC at the chosen integer shift is the confidence: textureless or unrelated strips score
near 0.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.fft
import scipy.signal

from opticstream_napari.processing.stitch.pairwise_kernels import (
    binomial_smooth,
    gauss_newton_shift,
    load_windowed,
    ncc_at,
    normalised_cross_power,
)

try:
    import pyfftw
except ImportError:  # pragma: no cover - pyfftw is in the lock; scipy is the portable path
    pyfftw = None

_SUPPRESS = 2
_TAPER = 0.5
_MAX_REFINE = 4
_MAX_STEP = 3.0
_ACCEPT_STEP = 0.75


@dataclass(frozen=True, slots=True)
class PairShift:
    """Where strip ``b`` lies relative to strip ``a``: ``b[y, x] ≈ a[y + dy, x + dx]``.

    ``ncc`` is the confidence (normalised cross-correlation of the overlapped pixels at the
    integer shift, in [-1, 1]); ``overlap`` the fraction of the strip those pixels cover;
    ``refined`` is False when the sub-pixel step could not be solved (too little texture).
    """

    dy: float
    dx: float
    ncc: float
    overlap: float
    refined: bool = True


class _Spectra:
    """Forward transforms of two padded strips and the inverse of their cross-power."""

    def __init__(self, padded: tuple[int, int]) -> None:
        half = (padded[0], padded[1] // 2 + 1)
        empty = pyfftw.zeros_aligned if pyfftw is not None else np.zeros
        self.in_a = empty(padded, dtype=np.float32)
        self.in_b = empty(padded, dtype=np.float32)
        self.fa = empty(half, dtype=np.complex64)
        self.fb = empty(half, dtype=np.complex64)
        self.cross = empty(half, dtype=np.complex64)
        self.surface = empty(padded, dtype=np.float32)
        if pyfftw is not None:
            flags = ("FFTW_MEASURE",)
            self._fwd_a = pyfftw.FFTW(self.in_a, self.fa, axes=(0, 1), flags=flags, threads=1)
            self._fwd_b = pyfftw.FFTW(self.in_b, self.fb, axes=(0, 1), flags=flags, threads=1)
            self._inv = pyfftw.FFTW(
                self.cross, self.surface, axes=(0, 1), direction="FFTW_BACKWARD",
                flags=flags, threads=1,
            )

    def correlate(self) -> npt.NDArray[np.float32]:
        """Phase-correlation surface of ``in_a`` and ``in_b``; peak at the shift (mod size)."""
        if pyfftw is not None:
            self._fwd_a()
            self._fwd_b()
            normalised_cross_power(self.fa, self.fb, self.cross)
            self._inv()
        else:
            self.fa[:] = scipy.fft.rfft2(self.in_a, workers=1)
            self.fb[:] = scipy.fft.rfft2(self.in_b, workers=1)
            normalised_cross_power(self.fa, self.fb, self.cross)
            self.surface[:] = scipy.fft.irfft2(self.cross, s=self.surface.shape, workers=1)
        return self.surface


class PhaseCorrelator:
    """Registers pairs of equally shaped strips; build one per strip shape and reuse it.

    Plans, windows and buffers are made once (FFTW planning takes a moment), which is what
    makes the per-pair cost a few milliseconds. Not thread-safe: one per thread
    (:func:`correlator_for` keeps one per thread and shape).

    ``peaks``: correlation peaks whose candidate shifts are checked by NCC.
    ``min_overlap``: a candidate must keep at least this fraction of the strip overlapped, so
    that a tiny corner overlap with a lucky NCC cannot win.
    ``max_shift``: optional bound on ``(|dy|, |dx|)`` of a candidate, in pixels.
    """

    def __init__(
        self,
        shape: tuple[int, int],
        *,
        peaks: int = 3,
        min_overlap: float = 0.25,
        max_shift: tuple[float, float] | None = None,
    ) -> None:
        h, w = (int(n) for n in shape)
        if h < 8 or w < 8:
            raise ValueError(f"overlap strips must be at least 8 × 8 pixels, found {h} × {w}")
        if peaks < 1 or not 0 < min_overlap <= 1:
            raise ValueError(f"need peaks >= 1 and 0 < min_overlap <= 1, found {peaks}, {min_overlap}")
        self.shape = (h, w)
        self.peaks = peaks
        self.min_overlap = min_overlap
        self.max_shift = (float(h), float(w)) if max_shift is None else max_shift
        padded = (scipy.fft.next_fast_len(h, real=True), scipy.fft.next_fast_len(w, real=True))
        self._spectra = _Spectra(padded)
        self._window_y = scipy.signal.windows.tukey(h, _TAPER).astype(np.float32)
        self._window_x = scipy.signal.windows.tukey(w, _TAPER).astype(np.float32)
        self._smooth_a = np.zeros((h, w), dtype=np.float32)
        self._smooth_b = np.zeros((h, w), dtype=np.float32)
        self._tmp = np.zeros((h, w), dtype=np.float32)
        self._scratch = (np.empty((h, w), dtype=np.float32), np.empty((h, w), dtype=np.float32))

    def register(self, a: npt.ArrayLike, b: npt.ArrayLike) -> PairShift:
        """Shift of ``b`` relative to ``a`` (see :class:`PairShift`)."""
        a = np.ascontiguousarray(a, dtype=np.float32)
        b = np.ascontiguousarray(b, dtype=np.float32)
        if a.shape != self.shape or b.shape != self.shape:
            raise ValueError(
                f"strips must both be {self.shape}, found {a.shape} and {b.shape}"
            )
        h, w = self.shape
        spectra = self._spectra
        a = self._load(a, spectra.in_a)
        b = self._load(b, spectra.in_b)
        best = self._best_candidate(a, b, spectra.correlate())
        if best is None:
            return PairShift(0.0, 0.0, 0.0, 0.0, refined=False)
        ncc, dy, dx, count = best
        fy, fx, refined = self._refine(dy, dx, a, b)
        if refined and max(abs(fy - dy), abs(fx - dx)) > 1.0:
            moved_ncc, moved_count = ncc_at(a, b, round(fy), round(fx))
            if moved_ncc >= ncc:
                ncc, count = moved_ncc, moved_count
            else:
                fy, fx, refined = float(dy), float(dx), False
        return PairShift(fy, fx, float(ncc), count / (h * w), refined)

    def _load(self, strip: np.ndarray, into: np.ndarray) -> np.ndarray:
        """Window ``strip`` into the FFT input; returns it, cleaned if it had non-finite samples."""
        h, w = self.shape
        if not math.isfinite(load_windowed(strip, self._window_y, self._window_x, into[:h, :w])):
            strip = _finite(strip)
            load_windowed(strip, self._window_y, self._window_x, into[:h, :w])
        return strip

    def _best_candidate(
        self, a: np.ndarray, b: np.ndarray, surface: np.ndarray
    ) -> tuple[float, int, int, int] | None:
        """(ncc, dy, dx, count) of the best integer candidate among the top peaks."""
        h, w = self.shape
        py_size, px_size = surface.shape
        need = self.min_overlap * h * w
        best: tuple[float, int, int, int] | None = None
        seen: set[tuple[int, int]] = set()
        for _ in range(self.peaks):
            flat = int(np.argmax(surface))
            py, px = divmod(flat, px_size)
            if not np.isfinite(surface[py, px]):
                break
            for dy in (py, py - py_size):
                for dx in (px, px - px_size):
                    if (dy, dx) in seen or abs(dy) > self.max_shift[0] or abs(dx) > self.max_shift[1]:
                        continue
                    seen.add((dy, dx))
                    if (h - abs(dy)) * (w - abs(dx)) < need or abs(dy) >= h or abs(dx) >= w:
                        continue
                    ncc, count = ncc_at(a, b, dy, dx)
                    if best is None or ncc > best[0]:
                        best = (ncc, dy, dx, count)
            rows = np.arange(py - _SUPPRESS, py + _SUPPRESS + 1) % py_size
            cols = np.arange(px - _SUPPRESS, px + _SUPPRESS + 1) % px_size
            surface[np.ix_(rows, cols)] = -np.inf
        return best

    def _refine(self, dy: int, dx: int, a: np.ndarray, b: np.ndarray) -> tuple[float, float, bool]:
        """Sub-pixel shift from an integer start.

        The correlation peak of a narrow windowed strip can sit a pixel or two short of the
        true shift, so steps of up to ``_MAX_STEP`` px are followed: the overlap is re-aligned
        on the nearest integer and solved again, never returning to a start already tried
        (which would oscillate around a half-pixel shift). A step within ``_ACCEPT_STEP`` px
        is final, as the symmetric step is accurate there. The caller keeps a result that
        moved more than a pixel only if the NCC at its integer position is no worse.
        """
        binomial_smooth(a, self._tmp, self._smooth_a)
        binomial_smooth(b, self._tmp, self._smooth_b)
        h, w = self.shape
        iy, ix = dy, dx
        visited: set[tuple[int, int]] = set()
        for _ in range(_MAX_REFINE):
            visited.add((iy, ix))
            y0, y1 = max(0, -iy) + 2, min(h, h - iy) - 2
            x0, x1 = max(0, -ix) + 2, min(w, w - ix) - 2
            ry, rx, ok = gauss_newton_shift(
                self._smooth_a, self._smooth_b, y0 + iy, x0 + ix, y0, x0, y1 - y0, x1 - x0,
                *self._scratch,
            )
            if not ok or abs(ry) > _MAX_STEP or abs(rx) > _MAX_STEP:
                break
            step = (round(iy + ry), round(ix + rx))
            if max(abs(ry), abs(rx)) <= _ACCEPT_STEP or step in visited:
                return iy + ry, ix + rx, True
            iy, ix = step
        return float(dy), float(dx), False


def _finite(strip: np.ndarray) -> np.ndarray:
    """A copy with non-finite samples set to the finite mean (0 if there is none).

    A NaN pixel (e.g. outside the scanned field) then carries no texture instead of poisoning
    every FFT bin and correlation sum.
    """
    finite = np.isfinite(strip)
    fill = np.float32(strip[finite].mean()) if finite.any() else np.float32(0.0)
    return np.where(finite, strip, fill).astype(np.float32)


_local = threading.local()
_CACHED_SHAPES = 8


def correlator_for(
    shape: tuple[int, int],
    *,
    peaks: int = 3,
    min_overlap: float = 0.25,
    max_shift: tuple[float, float] | None = None,
) -> PhaseCorrelator:
    """This thread's correlator for a strip shape and settings, planned once.

    Every mosaic of an acquisition has the same strip shapes, so the FFTW planning (a fraction
    of a second per shape) is paid once per thread. The least recently made of more than
    ``_CACHED_SHAPES`` is dropped, bounding the buffers kept (~20 MB for a 2048 × 205 strip).
    """
    key = (tuple(int(n) for n in shape), peaks, min_overlap, max_shift)
    cache: dict[tuple[object, ...], PhaseCorrelator] = _local.__dict__.setdefault("plans", {})
    if key not in cache:
        if len(cache) >= _CACHED_SHAPES:
            del cache[next(iter(cache))]
        cache[key] = PhaseCorrelator(
            key[0], peaks=peaks, min_overlap=min_overlap, max_shift=max_shift
        )
    return cache[key]


def register_pair(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    *,
    peaks: int = 3,
    min_overlap: float = 0.25,
    max_shift: tuple[float, float] | None = None,
) -> PairShift:
    """Register two strips with this thread's cached :class:`PhaseCorrelator` for their shape."""
    correlator = correlator_for(
        np.shape(a), peaks=peaks, min_overlap=min_overlap, max_shift=max_shift
    )
    return correlator.register(a, b)
