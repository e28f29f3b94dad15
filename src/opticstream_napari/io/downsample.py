"""2× pooling for pyramid levels: NaN-aware mean, and the circular mean of 180°-periodic angles.

Every axis longer than one sample is halved (output ``ceil(n / 2)``); an odd trailing sample is
averaged on its own, so no data is trimmed. A size-1 axis stays size 1. The kernels treat every
array as 3D; 2D arrays are viewed as one plane.
"""

from __future__ import annotations

from enum import StrEnum

import numba as nb
import numpy as np


class Reduction(StrEnum):
    """How four (2D) or eight (3D) samples become one on the next level."""

    MEAN = "mean"
    CIRCULAR_180 = "circular_180"


def pooled_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple((n + 1) // 2 for n in shape)


def pool2(block: np.ndarray, reduction: Reduction = Reduction.MEAN) -> np.ndarray:
    """Halve every axis of ``block`` (2D or 3D) with the given reduction.

    Float means skip NaN (all-NaN gives NaN); integer means round half up. The circular mean
    averages (cos 2θ, sin 2θ) of angles in degrees so -89° and 89° pool to ±90°, not 0°.
    """
    if block.ndim not in (2, 3):
        raise ValueError(f"pool2 takes 2D or 3D blocks, found shape {block.shape}")
    if reduction is Reduction.CIRCULAR_180:
        return _pool_circular(block)
    src = block.reshape((1, *block.shape)) if block.ndim == 2 else block
    out = np.empty(pooled_shape(src.shape), dtype=block.dtype)
    if np.issubdtype(block.dtype, np.floating):
        _pool(src, out, _MEAN)
    elif np.issubdtype(block.dtype, np.integer):
        _pool(src, out, _INTEGER_MEAN)
    else:
        raise TypeError(f"cannot average samples of type {block.dtype}")
    return out.reshape(pooled_shape(block.shape))


def _pool_circular(block: np.ndarray) -> np.ndarray:
    """Angles pooled in one pass (no full-size cos/sin copies: a volume's write unit is large)."""
    src = block.astype(np.float32, copy=False)
    src = src.reshape((1, *src.shape)) if src.ndim == 2 else src
    out = np.empty(pooled_shape(src.shape), dtype=np.float32)
    _pool(src, out, _CIRCULAR)
    return out.reshape(pooled_shape(block.shape)).astype(block.dtype, copy=False)


# What _pool does with each 2×2×2 block (an int, not a function argument: numba cannot cache a
# kernel specialised on a function, and the engine's worker processes would recompile it).
_MEAN, _INTEGER_MEAN, _CIRCULAR = 0, 1, 2


@nb.njit(nogil=True, cache=True, inline="always")
def _mean8(a, b, c, d, e, f, g, h):
    """Mean of the finite samples; NaN when none is."""
    zero = np.float32(0.0)
    one = np.float32(1.0)
    total = zero
    count = zero
    for v in (a, b, c, d, e, f, g, h):
        finite = v == v
        total += v if finite else zero
        count += one if finite else zero
    return total / count if count > zero else np.nan


@nb.njit(nogil=True, cache=True, inline="always")
def _integer_mean8(a, b, c, d, e, f, g, h):
    """Mean rounded half up."""
    total = 0
    for v in (a, b, c, d, e, f, g, h):
        total += np.int64(v)
    return (total + 4) // 8


@nb.njit(nogil=True, cache=True, inline="always")
def _circular_mean8(a, b, c, d, e, f, g, h):
    """½·atan2(Σ sin 2θ, Σ cos 2θ) over the finite angles (degrees); NaN when none is."""
    doubled = np.float32(np.pi / 90.0)
    zero = np.float32(0.0)
    c_sum = zero
    s_sum = zero
    n = 0
    for v in (a, b, c, d, e, f, g, h):
        if v - v == zero:
            c_sum += np.cos(v * doubled)
            s_sum += np.sin(v * doubled)
            n += 1
    return np.arctan2(s_sum, c_sum) * np.float32(90.0 / np.pi) if n else np.nan


@nb.njit(nogil=True, cache=True, inline="always")
def _reduce8(mode, a, b, c, d, e, f, g, h):
    if mode == _CIRCULAR:
        return _circular_mean8(a, b, c, d, e, f, g, h)
    if mode == _INTEGER_MEAN:
        return _integer_mean8(a, b, c, d, e, f, g, h)
    return _mean8(a, b, c, d, e, f, g, h)


@nb.njit(nogil=True, cache=True)
def _pool(src, out, mode):
    """out[k, j, i] = the ``mode`` reduction of src's 2×2×2 block at (2k, 2j, 2i); a trailing
    odd sample along an axis stands in for its missing neighbour."""
    sz, sy, sx = src.shape
    nz, ny, nx = out.shape
    pairs = sx // 2
    for k in range(nz):
        k0 = 2 * k
        k1 = min(k0 + 1, sz - 1)
        for j in range(ny):
            j0 = 2 * j
            j1 = min(j0 + 1, sy - 1)
            r00 = src[k0, j0]
            r01 = src[k0, j1]
            r10 = src[k1, j0]
            r11 = src[k1, j1]
            row = out[k, j]
            for i in range(pairs):
                i0 = 2 * i
                row[i] = _reduce8(
                    mode, r00[i0], r00[i0 + 1], r01[i0], r01[i0 + 1],
                    r10[i0], r10[i0 + 1], r11[i0], r11[i0 + 1],
                )
            if pairs < nx:
                i0 = sx - 1
                row[pairs] = _reduce8(
                    mode, r00[i0], r00[i0], r01[i0], r01[i0], r10[i0], r10[i0], r11[i0], r11[i0]
                )
