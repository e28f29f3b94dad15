"""Tissue surface per A-line (spec 4.3): gradient method, flat depth, or a given map.

The gradient method looks for the strongest rise of the Gaussian-smoothed dBI profile. The
smoothing (σ = 5) and the step detector ([−⅕]×5 then [+⅕]×5) are combined into one FIR filter
over the first ``n`` samples above the signal floor, the profile extended upwards with its first
(air) sample so shallow surfaces are found; the surface is the first sample after the detected
step. Indices are 0-based depth samples.
"""

from __future__ import annotations

import numba as nb
import numpy as np
import numpy.typing as npt
from scipy.ndimage import median_filter

SIGMA = 5.0
STEP_HALF = 5
SIGNAL_FLOOR_DB = 0.01
MIN_SIGNAL_SAMPLES = 10


def step_filter(sigma: float = SIGMA, half: int = STEP_HALF) -> tuple[npt.NDArray[np.float32], int]:
    """The combined Gaussian + step kernel and the offset from filter start to the step."""
    radius = round(4 * sigma)
    x = np.arange(-radius, radius + 1)
    gauss = np.exp(-0.5 * (x / sigma) ** 2)
    gauss /= gauss.sum()
    step = np.concatenate([np.full(half, -1.0 / half), np.full(half, 1.0 / half)])
    # correlate(correlate(x, gauss), step) == correlate(x, convolve(gauss, step[::-1])[::-1])
    combined = np.convolve(gauss, step[::-1])[::-1]
    return combined.astype(np.float32), radius + half


@nb.njit(nogil=True, cache=True, fastmath=True)
def _gradient_surface(dbi, kernel, lead, floor, min_samples, out):  # pragma: no cover - numba
    """Tap-major FIR (each tap a contiguous multiply-add over all positions) then argmax.

    The profile is extended upwards by ``lead`` copies of its first sample (air), so a surface
    shallower than the filter's half-length is still found.
    """
    rows, depth = dbi.shape
    taps = kernel.size
    padded = np.empty(depth + lead, dtype=np.float32)
    response = np.empty(depth + lead, dtype=np.float32)
    for r in range(rows):
        profile = dbi[r]
        n = 0
        for z in range(depth):
            if profile[z] > floor:
                n += 1
        if n <= min_samples or n + lead < taps:
            out[r] = 0
            continue
        padded[:lead] = profile[0]
        padded[lead:lead + n] = profile[:n]
        positions = n + lead - taps + 1
        response[:positions] = 0.0
        for t in range(taps):
            weight = kernel[t]
            for start in range(positions):
                response[start] += weight * padded[start + t]
        best_at = 0
        best = response[0]
        for start in range(1, positions):
            if response[start] > best:
                best = response[start]
                best_at = start
        out[r] = best_at


def gradient_surface(dbi: npt.NDArray[np.float32]) -> npt.NDArray[np.int32]:
    """Raw surface per A-line of a (..., depth) dBI array, before the 3×3 median filter."""
    kernel, lead = step_filter()
    flat = np.ascontiguousarray(dbi).reshape(-1, dbi.shape[-1])
    out = np.empty(flat.shape[0], dtype=np.int32)
    _gradient_surface(flat, kernel, lead, np.float32(SIGNAL_FLOOR_DB), MIN_SIGNAL_SAMPLES, out)
    return out.reshape(dbi.shape[:-1])


def smooth_surface(raw: npt.NDArray[np.int32], depth: int) -> npt.NDArray[np.int32]:
    """3×3 median filter with symmetric edges, clamped to the volume's depth."""
    filtered = median_filter(raw, size=3, mode="mirror") if raw.ndim == 2 else raw
    return np.clip(filtered, 0, depth - 1).astype(np.int32)


def flat_surface(shape: tuple[int, int], depth_index: int, depth: int) -> npt.NDArray[np.int32]:
    return np.full(shape, int(np.clip(depth_index, 0, depth - 1)), dtype=np.int32)
