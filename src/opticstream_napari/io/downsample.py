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
        _pool_float(src, out)
    elif np.issubdtype(block.dtype, np.integer):
        _pool_int(src, out)
    else:
        raise TypeError(f"cannot average samples of type {block.dtype}")
    return out.reshape(pooled_shape(block.shape))


def _pool_circular(block: np.ndarray) -> np.ndarray:
    """Angles pooled in one pass (no full-size cos/sin copies: a volume's write unit is large)."""
    src = block.astype(np.float32, copy=False)
    src = src.reshape((1, *src.shape)) if src.ndim == 2 else src
    out = np.empty(pooled_shape(src.shape), dtype=np.float32)
    _pool_angles(src, out)
    return out.reshape(pooled_shape(block.shape)).astype(block.dtype, copy=False)


@nb.njit(nogil=True, cache=True)
def _pool_angles(src, out):
    """½·atan2(Σ sin 2θ, Σ cos 2θ) over the finite samples of each 2×2×2 block, in degrees."""
    sz, sy, sx = src.shape
    nz, ny, nx = out.shape
    doubled = np.float32(np.pi / 90.0)
    halved = np.float32(90.0 / np.pi)
    zero = np.float32(0.0)
    for k in range(nz):
        k0 = 2 * k
        k1 = min(k0 + 1, sz - 1)
        for j in range(ny):
            j0 = 2 * j
            j1 = min(j0 + 1, sy - 1)
            for i in range(nx):
                i0 = 2 * i
                i1 = min(i0 + 1, sx - 1)
                c = zero
                s = zero
                n = 0
                for v in (src[k0, j0, i0], src[k0, j0, i1], src[k0, j1, i0], src[k0, j1, i1],
                          src[k1, j0, i0], src[k1, j0, i1], src[k1, j1, i0], src[k1, j1, i1]):
                    if v - v == zero:
                        c += np.cos(v * doubled)
                        s += np.sin(v * doubled)
                        n += 1
                out[k, j, i] = np.arctan2(s, c) * halved if n else np.nan


@nb.njit(nogil=True, cache=True, inline="always")
def _mean8(a, b, c, d, e, f, g, h):
    zero = np.float32(0.0)
    one = np.float32(1.0)
    total = zero
    count = zero
    for v in (a, b, c, d, e, f, g, h):
        finite = v == v
        total += v if finite else zero
        count += one if finite else zero
    return total / count if count > zero else np.nan


@nb.njit(nogil=True, cache=True)
def _pool_float(src, out):
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
                row[i] = _mean8(
                    r00[i0], r00[i0 + 1], r01[i0], r01[i0 + 1],
                    r10[i0], r10[i0 + 1], r11[i0], r11[i0 + 1],
                )
            if pairs < nx:
                i0 = sx - 1
                row[pairs] = _mean8(
                    r00[i0], r00[i0], r01[i0], r01[i0], r10[i0], r10[i0], r11[i0], r11[i0]
                )


@nb.njit(nogil=True, cache=True)
def _pool_int(src, out):
    sz, sy, sx = src.shape
    nz, ny, nx = out.shape
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
            for i in range(nx):
                i0 = 2 * i
                i1 = min(i0 + 1, sx - 1)
                total = 0
                for v in (r00[i0], r00[i1], r01[i0], r01[i1], r10[i0], r10[i1], r11[i0], r11[i1]):
                    total += np.int64(v)
                out[k, j, i] = (total + 4) // 8
