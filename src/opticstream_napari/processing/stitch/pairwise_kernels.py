"""numba kernels of pairwise registration; each is one fused pass over an overlap strip.

Fusing keeps a 2048 × 205 strip's few MB in cache: the unfused numpy equivalents make one
full-size temporary per operation and run 3-5× slower, which is the difference between ~50
and >100 pairs/s per core.

Shift convention everywhere: ``b[y, x] == a[y + dy, x + dx]``.
"""

from __future__ import annotations

import numba as nb
import numpy as np

_TINY = np.float32(1e-20)
_D1 = 8.0 / 12.0
_D2 = 1.0 / 12.0


@nb.njit(nogil=True, cache=True, fastmath=True, error_model="numpy")
def load_windowed(src, window_y, window_x, out):  # pragma: no cover - numba
    """Write ``(src - mean) · wy ⊗ wx`` into the top-left of ``out`` (its padding stays 0).

    Returns the sum of ``src``. It is not finite when a sample is not, and the caller tests
    that outside the kernel: under fastmath a finiteness test inside would be folded away.
    """
    h, w = src.shape
    total = 0.0
    for i in range(h):
        row = np.float32(0.0)
        for j in range(w):
            row += src[i, j]
        total += row
    mean = np.float32(total / (h * w))
    for i in range(h):
        wy = window_y[i]
        for j in range(w):
            out[i, j] = (src[i, j] - mean) * wy * window_x[j]
    return total


@nb.njit(nogil=True, cache=True, fastmath=True, error_model="numpy")
def normalised_cross_power(fa, fb, out):  # pragma: no cover - numba
    """``out = Fa · conj(Fb) / |Fa · conj(Fb)|``: the phase-only spectrum of the shift."""
    h, w = fa.shape
    for i in range(h):
        for j in range(w):
            z = fa[i, j] * np.conj(fb[i, j])
            out[i, j] = z * (np.float32(1.0) / (np.sqrt(z.real * z.real + z.imag * z.imag) + _TINY))


@nb.njit(nogil=True, cache=True, fastmath=True, error_model="numpy")
def ncc_at(a, b, dy, dx):  # pragma: no cover - numba
    """Normalised cross-correlation of the pixels ``a`` and ``b`` share at integer ``(dy, dx)``.

    Returns (ncc, pixel count); ncc is 0 where either side has no variance (no texture).
    """
    h, w = a.shape
    y0, y1 = max(0, -dy), min(h, h - dy)
    x0, x1 = max(0, -dx), min(w, w - dx)
    if y1 - y0 < 1 or x1 - x0 < 2:
        return 0.0, 0
    sa = sb = saa = sbb = sab = 0.0
    for i in range(y0, y1):
        ra = rb = raa = rbb = rab = np.float32(0.0)
        for j in range(x0, x1):
            u = a[i + dy, j + dx]
            v = b[i, j]
            ra += u
            rb += v
            raa += u * u
            rbb += v * v
            rab += u * v
        sa += ra
        sb += rb
        saa += raa
        sbb += rbb
        sab += rab
    n = (y1 - y0) * (x1 - x0)
    ma, mb = sa / n, sb / n
    va, vb = saa / n - ma * ma, sbb / n - mb * mb
    if va <= 1e-10 * max(ma * ma, 1e-20) or vb <= 1e-10 * max(mb * mb, 1e-20):
        return 0.0, n
    return (sab / n - ma * mb) / np.sqrt(va * vb), n


@nb.njit(nogil=True, cache=True, fastmath=True, error_model="numpy")
def binomial_smooth(src, tmp, out):  # pragma: no cover - numba
    """5 × 5 binomial blur (σ ≈ 1 px) of the interior; the 2-pixel border of ``out`` is unused.

    Blurring both strips the same way leaves the shift unchanged but takes most of the pixel
    noise out of the gradients, which would otherwise bias the Gauss-Newton step toward 0.
    """
    h, w = src.shape
    c = np.float32(1.0 / 16.0)
    for i in range(2, h - 2):
        for j in range(w):
            tmp[i, j] = c * (
                src[i - 2, j] + src[i + 2, j]
                + np.float32(4.0) * (src[i - 1, j] + src[i + 1, j])
                + np.float32(6.0) * src[i, j]
            )
    for i in range(2, h - 2):
        for j in range(2, w - 2):
            out[i, j] = c * (
                tmp[i, j - 2] + tmp[i, j + 2]
                + np.float32(4.0) * (tmp[i, j - 1] + tmp[i, j + 1])
                + np.float32(6.0) * tmp[i, j]
            )


@nb.njit(nogil=True, cache=True, fastmath=True, error_model="numpy")
def gauss_newton_shift(a, b, ay, ax, by, bx, h, w, mean_img, diff):  # pragma: no cover - numba
    """Sub-pixel residual ``r`` with ``B(p) ≈ A(p + r)`` for the regions A, B of ``a``, ``b``.

    One symmetric Gauss-Newton step on gain- and offset-normalised intensities: the gradient
    is that of the mean of both regions (5-point stencil), which cancels the second-order
    linearisation error, so one step from |r| ≤ 0.5 px is accurate to a few thousandths.
    ``mean_img`` and ``diff`` are scratch arrays of at least (h, w).
    Returns (ry, rx, ok); ok is False when the region has too little texture to solve.
    """
    if h < 5 or w < 5:
        return 0.0, 0.0, False
    sa = sb = saa = sbb = 0.0
    for i in range(h):
        ra = rb = raa = rbb = np.float32(0.0)
        for j in range(w):
            u = a[ay + i, ax + j]
            v = b[by + i, bx + j]
            ra += u
            rb += v
            raa += u * u
            rbb += v * v
        sa += ra
        sb += rb
        saa += raa
        sbb += rbb
    n = h * w
    ma, mb = sa / n, sb / n
    va, vb = saa / n - ma * ma, sbb / n - mb * mb
    if va <= 1e-10 * max(ma * ma, 1e-20) or vb <= 1e-10 * max(mb * mb, 1e-20):
        return 0.0, 0.0, False
    ga, gb = np.float32(1.0 / np.sqrt(va)), np.float32(1.0 / np.sqrt(vb))
    fa, fb = np.float32(ma), np.float32(mb)
    half = np.float32(0.5)
    for i in range(h):
        for j in range(w):
            u = ga * (a[ay + i, ax + j] - fa)
            v = gb * (b[by + i, bx + j] - fb)
            mean_img[i, j] = half * (u + v)
            diff[i, j] = v - u
    d1, d2 = np.float32(_D1), np.float32(_D2)
    syy = syx = sxx = sey = sex = 0.0
    for i in range(2, h - 2):
        ryy = ryx = rxx = rey = rex = np.float32(0.0)
        for j in range(2, w - 2):
            gy = d1 * (mean_img[i + 1, j] - mean_img[i - 1, j]) - d2 * (
                mean_img[i + 2, j] - mean_img[i - 2, j]
            )
            gx = d1 * (mean_img[i, j + 1] - mean_img[i, j - 1]) - d2 * (
                mean_img[i, j + 2] - mean_img[i, j - 2]
            )
            e = diff[i, j]
            ryy += gy * gy
            ryx += gy * gx
            rxx += gx * gx
            rey += e * gy
            rex += e * gx
        syy += ryy
        syx += ryx
        sxx += rxx
        sey += rey
        sex += rex
    det = syy * sxx - syx * syx
    if det <= 1e-9 * (syy * sxx + 1e-30):
        return 0.0, 0.0, False
    return (sxx * sey - syx * sex) / det, (syy * sex - syx * sey) / det, True
