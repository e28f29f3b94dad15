"""numba kernels of the spectral pipeline; each runs on one block of B-lines without the GIL.

Fusing the stages keeps a PS A-line's 2 × L samples in cache from the raw uint16 read to the
FFT input, and from the FFT output to the three volumes; unfused numpy moves ~20× more memory.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from opticstream_napari.processing.psoct.approx import ATAN_COEF, LOG2_COEF
from opticstream_napari.processing.psoct.column_median import column_median

_ATAN = tuple(float(c) for c in ATAN_COEF)
_LOG2 = tuple(float(c) for c in LOG2_COEF)
_HALF_PI = np.float32(np.pi / 2)
_PI = np.float32(np.pi)
_DEG = np.float32(180.0 / np.pi)
_DB_PER_LOG2 = np.float32(10.0 * np.log10(2.0))
_TINY = np.float32(np.finfo(np.float32).tiny)


@nb.njit(nogil=True, cache=True, fastmath=True)
def _resample_row(row, reverse, full_scale, seg_starts, seg_left, left, right, pixels, dst):  # pragma: no cover
    """One spectrum onto uniform k; returns how many raw samples are at or above ``full_scale``.

    ``row`` is in storage order (reversed when ``reverse``). Within segment s, target k reads
    pixels ``seg_left[s] + (k - seg_starts[s])`` and the next one, weighted ``left[k]`` and
    ``right[k]`` (the lerp weights times the window): contiguous, so it vectorises. Indices are
    unsigned so numba emits no negative-index wraparound, which would block that.
    """
    length = np.uint64(row.size)
    one = np.uint64(1)
    saturated = 0
    if reverse:
        last = length - one
        for p in range(length):
            pixels[p] = np.float32(row[last - p])
    else:
        for p in range(length):
            pixels[p] = np.float32(row[p])
    for p in range(length):
        saturated += row[p] >= full_scale
    for s in range(seg_left.size):
        k0 = seg_starts[s]
        p0 = seg_left[s]
        for j in range(seg_starts[s + 1] - k0):
            dst[k0 + j] = pixels[p0 + j] * left[k0 + j] + pixels[p0 + j + one] * right[k0 + j]
    return saturated


@nb.njit(nogil=True, cache=True)
def prepare_spectra(
    raw, stored_order, seg_starts, seg_left, left, right, dc_rows, sample_rows, sample_pairs, full_scale,
    guess, have_guess, out, shift, saturated,
):  # pragma: no cover - numba
    """raw (nb, 2, A, L) uint16 -> out (nb, 2, A, ≥ L) float32 on uniform k, windowed; shift (nb, 2, L).

    Per B-line and camera: resample onto uniform k (times the window), and take the exact
    median over the ``dc_rows`` A-lines as ``shift``, which the caller subtracts chunk by chunk
    right before the FFT (:func:`pack_rows`). The spec subtracts the mean over A-lines
    (background) and then the median of what is left (DC); mean + median(s - mean) = median(s),
    so one median does both. Camera 2 is read
    reversed when ``stored_order`` (the instrument's layout). ``guess``/``have_guess`` (2, L)/(2,)
    carry each camera's last median to seed the next search; ``saturated[b, c]`` counts raw
    samples at or above ``full_scale``.
    """
    nblines, _, alines, length = raw.shape
    pixels = np.empty(length, dtype=np.float32)
    for b in range(nblines):
        for c in range(2):
            reverse = stored_order and c == 1
            count = 0
            for a in range(alines):
                count += _resample_row(raw[b, c, a], reverse, full_scale, seg_starts[c], seg_left[c],
                                       left[c], right[c], pixels, out[b, c, a])
            saturated[b, c] = count
            column_median(out[b, c], dc_rows, sample_rows, sample_pairs, guess[c], have_guess[c], shift[b, c])
            guess[c, :] = shift[b, c]
            have_guess[c] = True


@nb.njit(nogil=True, cache=True, fastmath=True)
def subtract_rotate_rows(rows, shift, phasor, out):  # pragma: no cover - numba
    """out[a, k] = (rows[a, k] - shift[k]) * phasor[k]: DC removal and dispersion compensation."""
    for a in range(rows.shape[0]):
        row = rows[a]
        dst = out[a]
        for k in range(shift.size):
            dst[k] = (row[k] - shift[k]) * phasor[k]


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
def pack_rows(rows1, shift1, rows2, shift2, out):  # pragma: no cover - numba
    """out[a, k] = (rows1[a, k] - shift1[k]) + i·(rows2[a, k] - shift2[k]).

    Both cameras' real spectra in one complex row: one complex FFT then transforms both (the
    two spectra separate by conjugate symmetry, :func:`packed_to_volumes`), at about half the
    cost of two real FFTs with this FFTW.
    """
    for a in range(rows1.shape[0]):
        first = rows1[a]
        second = rows2[a]
        dst = out[a]
        for k in range(shift1.size):
            dst[k] = complex(first[k] - shift1[k], second[k] - shift2[k])


@nb.njit(inline="always", fastmath=True)
def _ps_voxel(re1, im1, re2, im2, two_offset, flip_phase):  # pragma: no cover - numba
    """Total power, retardance and orientation (degrees) of one depth sample of J1, J2.

    O3D is half the wrapped phase difference arg(J1·conj J2) (+2·offset), so it is
    180°-periodic in [-90°, 90°].
    """
    p1 = re1 * re1 + im1 * im1
    p2 = re2 * re2 + im2 * im2
    s1 = np.sqrt(p1)
    s2 = np.sqrt(p2)
    small = min(s1, s2)
    big = max(s1, s2)
    t = small / big if big > 0 else np.float32(0.0)
    ret = _atan_unit(t)
    ret = (_HALF_PI - ret if s1 > s2 else ret) * _DEG
    cre = re1 * re2 + im1 * im2
    cim = im1 * re2 - re1 * im2
    phi = _atan2(cim, cre)
    phi = -phi if flip_phase else phi
    phi = phi + two_offset
    phi = phi - 2 * _PI if phi > _PI else phi
    phi = phi + 2 * _PI if phi < -_PI else phi
    return max(p1 + p2, _TINY), ret, phi * (_DEG * np.float32(0.5))


@nb.njit(inline="always", fastmath=True)
def _finish_row(power, bits, reverse_z, dbi, r3d, o3d, r):  # pragma: no cover - numba
    """dB from the row's total power, and the depth order of the three volumes."""
    _log2_rows(power, bits, dbi[r])
    for z in range(power.size):
        dbi[r, z] *= _DB_PER_LOG2
    if reverse_z:
        for volume in (dbi, r3d, o3d):
            volume[r] = volume[r, ::-1].copy()


@nb.njit(nogil=True, cache=True, fastmath=True)
def spectra_to_volumes(
    j1, j2, first_bin, two_offset, flip_phase, reverse_z, dbi, r3d, o3d, power, bits
):  # pragma: no cover - numba
    """Depth bins ``first_bin..`` of the two cameras' spectra -> dBI (dB), R3D and O3D (degrees).

    j1, j2: (rows, bins) complex64; dbi, r3d, o3d: (rows, depth) float32, depth reversed when
    ``reverse_z``.
    """
    rows, depth = dbi.shape
    p = power[:depth]
    for r in range(rows):
        a = j1[r, first_bin:first_bin + depth]
        b = j2[r, first_bin:first_bin + depth]
        for z in range(depth):
            p[z], r3d[r, z], o3d[r, z] = _ps_voxel(a[z].real, a[z].imag, b[z].real, b[z].imag, two_offset, flip_phase)
        _finish_row(p, bits[:depth], reverse_z, dbi, r3d, o3d, r)


@nb.njit(nogil=True, cache=True, fastmath=True)
def packed_to_volumes(
    packed, first_bin, two_offset, flip_phase, reverse_z, dbi, r3d, o3d, power, bits
):  # pragma: no cover - numba
    """As :func:`spectra_to_volumes`, from Z = FFT(s1 + i·s2) of two real spectra (:func:`pack_rows`).

    With N the length and Z̄ the conjugate, J1[k] = (Z[k] + Z̄[N−k]) / 2 and
    J2[k] = (Z[k] − Z̄[N−k]) / 2i; bin 0 pairs with itself.
    """
    rows, depth = dbi.shape
    n = packed.shape[1]
    half = np.float32(0.5)
    p = power[:depth]
    start = 1 if first_bin == 0 else 0
    # Unsigned indices: numba then emits no negative-index wraparound, which blocks vectorising.
    first = np.uint64(first_bin)
    last = np.uint64(n - first_bin)
    for r in range(rows):
        row = packed[r]
        if start:
            p[0], r3d[r, 0], o3d[r, 0] = _ps_voxel(row[0].real, np.float32(0.0), row[0].imag, np.float32(0.0),
                                                   two_offset, flip_phase)
        for z in range(np.uint64(start), np.uint64(depth)):
            zr = row[first + z].real
            zi = row[first + z].imag
            mr = row[last - z].real
            mi = row[last - z].imag
            p[z], r3d[r, z], o3d[r, z] = _ps_voxel(
                half * (zr + mr), half * (zi - mi), half * (zi + mi), half * (mr - zr), two_offset, flip_phase
            )
        _finish_row(p, bits[:depth], reverse_z, dbi, r3d, o3d, r)


@nb.njit(nogil=True, cache=True)
def unpack_pair(packed, first_bin, j1, j2):  # pragma: no cover - numba
    """J1, J2 (rows, depth) from Z = FFT(s1 + i·s2), as in :func:`packed_to_volumes`."""
    rows, depth = j1.shape
    n = packed.shape[1]
    for r in range(rows):
        row = packed[r]
        for z in range(depth):
            k = first_bin + z
            mirror = row[(n - k) % n].conjugate()
            j1[r, z] = (row[k] + mirror) * np.float32(0.5)
            j2[r, z] = (row[k] - mirror) * np.complex64(-0.5j)
