"""Tissue surface per A-line (spec 4.3): gradient method, flat depth, or a given map.

The gradient method looks for the strongest rise of the Gaussian-smoothed dBI profile. The
smoothing (σ = 5, truncated at 2σ like MATLAB's ``imgaussfilt``, edges replicated) and the step
detector ([−⅕]×5 then [+⅕]×5) are combined into one 30-tap FIR filter over the first ``n``
samples above the signal floor. The profile is extended upwards with its first (air) sample
further than the smoothing needs, so surfaces shallower than the step's half-length are found;
the surface is the first sample after the detected step. Indices are 0-based depth samples.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
import numpy.typing as npt
from scipy.ndimage import median_filter

SIGMA = 5.0
STEP_HALF = 5
SIGNAL_FLOOR_DB = 0.01
MIN_SIGNAL_SAMPLES = 10


def step_filter(sigma: float = SIGMA, half: int = STEP_HALF) -> tuple[npt.NDArray[np.float32], int, int]:
    """The combined Gaussian + step kernel, the offset from filter start to the step, and the
    Gaussian's radius (the samples the smoothing replicates past the profile's last sample)."""
    radius = math.ceil(2 * sigma)
    x = np.arange(-radius, radius + 1)
    gauss = np.exp(-0.5 * (x / sigma) ** 2)
    gauss /= gauss.sum()
    step = np.concatenate([np.full(half, -1.0 / half), np.full(half, 1.0 / half)])
    # correlate(correlate(x, gauss), step) == correlate(x, convolve(gauss, step[::-1])[::-1])
    combined = np.convolve(gauss, step[::-1])[::-1]
    return combined.astype(np.float32), radius + half, radius


TAP_GROUP = 5
MAX_LANES = 8


@nb.njit(inline="always", fastmath=True)
def _maximum(values, lanes):  # pragma: no cover - numba
    """Maximum of a non-empty array through ``MAX_LANES`` running maxima, which vectorise."""
    lanes[:] = values[0]
    full = values.size - values.size % MAX_LANES
    for s0 in range(0, full, MAX_LANES):
        for j in range(MAX_LANES):
            lanes[j] = max(lanes[j], values[s0 + j])
    best = lanes.max()
    for s in range(full, values.size):
        best = max(best, values[s])
    return best


@nb.njit(nogil=True, cache=True, fastmath=True)
def _gradient_surface(dbi, grouped, taps, lead, tail, floor, min_samples, out):  # pragma: no cover - numba
    """FIR over the first ``n`` samples above the floor, then the first index of the maximum.

    The profile is extended upwards by ``lead`` copies of its first sample (air), so a surface
    shallower than the filter's half-length is still found, and downwards by ``tail`` copies of
    its last, as the original's replicate-padded smoothing does. ``grouped`` is the kernel in rows of
    ``TAP_GROUP`` taps (zero-padded): each sweep over the positions adds five taps, so the
    response is loaded and stored once per five multiply-adds. The maximum is found with a
    vectorised max and then a search for its first position (a running argmax does not vectorise).
    """
    rows, depth = dbi.shape
    groups = grouped.shape[0]
    padded = np.zeros(depth + lead + tail + groups * TAP_GROUP, dtype=np.float32)
    response = np.empty(depth + lead + tail, dtype=np.float32)
    lanes = np.empty(MAX_LANES, dtype=np.float32)
    for r in range(rows):
        profile = dbi[r]
        n = 0
        for z in range(depth):
            n += profile[z] > floor
        if n <= min_samples or n + lead + tail < taps:
            out[r] = 0
            continue
        padded[:lead] = profile[0]
        padded[lead:lead + n] = profile[:n]
        padded[lead + n:lead + n + tail] = profile[n - 1]
        positions = n + lead + tail - taps + 1
        response[:positions] = 0.0
        for g in range(groups):
            w0 = grouped[g, 0]
            w1 = grouped[g, 1]
            w2 = grouped[g, 2]
            w3 = grouped[g, 3]
            w4 = grouped[g, 4]
            t = g * TAP_GROUP
            for s in range(positions):
                q = s + t
                response[s] += (w0 * padded[q] + w1 * padded[q + 1] + w2 * padded[q + 2]
                                + w3 * padded[q + 3] + w4 * padded[q + 4])
        best = _maximum(response[:positions], lanes)
        best_at = 0
        for s in range(positions):
            if response[s] == best:
                best_at = s
                break
        out[r] = best_at


def gradient_surface(dbi: npt.NDArray[np.float32]) -> npt.NDArray[np.int32]:
    """Raw surface per A-line of a (..., depth) dBI array, before the 3×3 median filter."""
    kernel, lead, tail = step_filter()
    grouped = np.zeros(-(-kernel.size // TAP_GROUP) * TAP_GROUP, dtype=np.float32)
    grouped[: kernel.size] = kernel
    flat = np.ascontiguousarray(dbi).reshape(-1, dbi.shape[-1])
    out = np.empty(flat.shape[0], dtype=np.int32)
    _gradient_surface(flat, grouped.reshape(-1, TAP_GROUP), kernel.size, lead, tail, np.float32(SIGNAL_FLOOR_DB),
                      MIN_SIGNAL_SAMPLES, out)
    return out.reshape(dbi.shape[:-1])


def smooth_surface(raw: npt.NDArray[np.int32], depth: int) -> npt.NDArray[np.int32]:
    """3×3 median filter with symmetric edges, clamped to the volume's depth."""
    filtered = median_filter(raw, size=3, mode="mirror") if raw.ndim == 2 else raw
    return np.clip(filtered, 0, depth - 1).astype(np.int32)


def flat_surface(shape: tuple[int, int], depth_index: int, depth: int) -> npt.NDArray[np.int32]:
    return np.full(shape, int(np.clip(depth_index, 0, depth - 1)), dtype=np.int32)
