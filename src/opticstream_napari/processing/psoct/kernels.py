"""numba kernels of the spectral pipeline; each runs on one block of B-lines without the GIL.

Fusing the stages keeps a PS A-line's 2 × L samples in cache from the raw uint16 read to the
FFT input, and from the FFT output to the three volumes; unfused numpy moves ~20× more memory.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from opticstream_napari.processing.psoct.approx import ATAN_COEF, LOG2_COEF

_ATAN = tuple(float(c) for c in ATAN_COEF)
_LOG2 = tuple(float(c) for c in LOG2_COEF)
_HALF_PI = np.float32(np.pi / 2)
_PI = np.float32(np.pi)
_DEG = np.float32(180.0 / np.pi)
_DB_PER_LOG2 = np.float32(10.0 * np.log10(2.0))
_TINY = np.float32(np.finfo(np.float32).tiny)


@nb.njit(nogil=True, cache=True, fastmath=True)
def prepare_spectra(
    raw, index, weight, window, dc_rows, pairs, size, low_pad, middle, out
):  # pragma: no cover - numba
    """raw (nb, 2, A, L) uint16 in pixel order -> out (nb, 2, A, L) float32 on uniform k.

    Per B-line and camera: resample onto uniform k, subtract the mean over A-lines
    (background; resampling is linear, so the mean of resampled rows equals the resampled
    mean), subtract the median over the ``dc_rows`` A-lines (DC, with the network of
    ``median_network.median_plan``), multiply by ``window``. Two passes over the data.
    """
    nblines, _, alines, length = raw.shape
    nsample = dc_rows.size
    mean = np.empty(length, dtype=np.float32)
    shift = np.empty(length, dtype=np.float32)
    columns = np.empty((size, length), dtype=np.float32)
    middle_lo = middle // size
    middle_hi = middle % size
    columns[:low_pad] = -np.inf
    columns[low_pad + nsample:] = np.inf
    scale = np.float32(1.0 / alines)
    for b in range(nblines):
        for c in range(2):
            idx = index[c]
            w = weight[c]
            mean[:] = 0.0
            for a in range(alines):
                row = raw[b, c, a]
                dst = out[b, c, a]
                for k in range(length):
                    i = idx[k]
                    lo = np.float32(row[i])
                    value = lo + (np.float32(row[i + 1]) - lo) * w[k]
                    dst[k] = value
                    mean[k] += value
            for k in range(length):
                mean[k] *= scale
            for j in range(nsample):
                src = out[b, c, dc_rows[j]]
                dst = columns[low_pad + j]
                for k in range(length):
                    dst[k] = src[k] - mean[k]
            for pair in range(pairs.shape[0]):
                lo_row = columns[pairs[pair, 0]]
                hi_row = columns[pairs[pair, 1]]
                for k in range(length):
                    x = lo_row[k]
                    y = hi_row[k]
                    lo_row[k] = min(x, y)
                    hi_row[k] = max(x, y)
            lower = columns[middle_lo]
            upper = columns[middle_hi]
            for k in range(length):
                shift[k] = mean[k] + np.float32(0.5) * (lower[k] + upper[k])
            for a in range(alines):
                dst = out[b, c, a]
                for k in range(length):
                    dst[k] = (dst[k] - shift[k]) * window[k]


@nb.njit(inline="always", fastmath=True)
def _atan_unit(t):  # pragma: no cover - numba
    s = t * t
    acc = np.float32(_ATAN[-1])
    for j in range(len(_ATAN) - 2, -1, -1):
        acc = acc * s + np.float32(_ATAN[j])
    return acc * t


@nb.njit(inline="always", fastmath=True)
def _atan2(y, x):  # pragma: no cover - numba
    ax = abs(x)
    ay = abs(y)
    big = max(ax, ay)
    small = min(ax, ay)
    t = small / big if big > 0 else np.float32(0.0)
    r = _atan_unit(t)
    r = _HALF_PI - r if ay > ax else r
    r = _PI - r if x < 0 else r
    return -r if y < 0 else r


@nb.njit(nogil=True, cache=True, fastmath=True)
def _log2_rows(values, bits, out):  # pragma: no cover - numba
    """out = log2(values) for positive float32, via exponent bits and a mantissa polynomial."""
    ibits = values.view(np.int32)
    mant = bits.view(np.float32)
    n = values.size
    for i in range(n):
        bits[i] = (ibits[i] & 0x007FFFFF) | 0x3F800000
    for i in range(n):
        m = mant[i] - np.float32(1.0)
        acc = np.float32(_LOG2[-1])
        for j in range(len(_LOG2) - 2, -1, -1):
            acc = acc * m + np.float32(_LOG2[j])
        out[i] = acc + np.float32((ibits[i] >> 23) - 127)


@nb.njit(nogil=True, cache=True, fastmath=True)
def spectra_to_volumes(
    j1, j2, first_bin, two_offset, flip_phase, dbi, r3d, o3d, power, bits
):  # pragma: no cover - numba
    """Depth bins ``first_bin..`` of the two cameras' spectra -> dBI (dB), R3D and O3D (degrees).

    j1, j2: (rows, bins) complex64 FFT outputs; dbi, r3d, o3d: (rows, depth) float32.
    O3D is half the wrapped phase difference arg(J1·conj J2) (+2·offset), so it is
    180°-periodic in [-90°, 90°].
    """
    rows, depth = dbi.shape
    for r in range(rows):
        a = j1[r, first_bin:first_bin + depth]
        b = j2[r, first_bin:first_bin + depth]
        p = power[:depth]
        for z in range(depth):
            re1 = a[z].real
            im1 = a[z].imag
            re2 = b[z].real
            im2 = b[z].imag
            p1 = re1 * re1 + im1 * im1
            p2 = re2 * re2 + im2 * im2
            p[z] = max(p1 + p2, _TINY)
            s1 = np.sqrt(p1)
            s2 = np.sqrt(p2)
            small = min(s1, s2)
            big = max(s1, s2)
            t = small / big if big > 0 else np.float32(0.0)
            ret = _atan_unit(t)
            r3d[r, z] = (_HALF_PI - ret if s1 > s2 else ret) * _DEG
            cre = re1 * re2 + im1 * im2
            cim = im1 * re2 - re1 * im2
            phi = _atan2(cim, cre)
            phi = -phi if flip_phase else phi
            phi = phi + two_offset
            phi = phi - 2 * _PI if phi > _PI else phi
            phi = phi + 2 * _PI if phi < -_PI else phi
            o3d[r, z] = phi * (_DEG * np.float32(0.5))
        _log2_rows(p, bits[:depth], dbi[r])
        for z in range(depth):
            dbi[r, z] *= _DB_PER_LOG2
