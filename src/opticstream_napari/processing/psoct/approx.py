"""Vectorisable approximations of atan, log2, sin and exp2 for the per-voxel work.

numba cannot vectorise calls into libm, and numpy's ufuncs make one temporary per operation;
both leave post-processing and the en-face maps far slower than the FFT. Polynomials fitted here
at import time (least squares on Chebyshev nodes) keep the error below 1e-6 (rad, log2 units,
relative for exp2), far inside what the 1° and 0.1 dB accuracy targets need.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

ATAN_DEGREE = 13
LOG2_DEGREE = 8
SIN_DEGREE = 9
EXP2_DEGREE = 6


def _chebyshev_nodes(a: float, b: float, n: int = 2048) -> npt.NDArray[np.float64]:
    k = np.arange(n)
    return (a + b) / 2 + (b - a) / 2 * np.cos((2 * k + 1) * np.pi / (2 * n))


def fit_atan_odd(degree: int = ATAN_DEGREE) -> npt.NDArray[np.float64]:
    """Coefficients c so that atan(t) ≈ t · Σ c_j (t²)^j on [0, 1]."""
    t = _chebyshev_nodes(0.0, 1.0)
    t = t[t > 1e-6]
    s = t * t
    basis = np.stack([t * s**j for j in range(degree // 2 + 1)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, np.arctan(t), rcond=None)
    return coef


def fit_log2_mantissa(degree: int = LOG2_DEGREE) -> npt.NDArray[np.float64]:
    """Coefficients c so that log2(m) ≈ Σ c_j (m − 1)^j on [1, 2)."""
    m = _chebyshev_nodes(1.0, 2.0)
    basis = np.stack([(m - 1) ** j for j in range(degree + 1)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, np.log2(m), rcond=None)
    return coef


def fit_sin_odd(degree: int = SIN_DEGREE) -> npt.NDArray[np.float64]:
    """Coefficients c so that sin(x) ≈ x · Σ c_j (x²)^j on [−π/2, π/2]."""
    x = _chebyshev_nodes(0.0, np.pi / 2)
    x = x[x > 1e-6]
    basis = np.stack([x ** (2 * j + 1) for j in range(degree // 2 + 1)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, np.sin(x), rcond=None)
    return coef


def fit_exp2(degree: int = EXP2_DEGREE) -> npt.NDArray[np.float64]:
    """Coefficients c so that 2**u ≈ Σ c_j u^j on [−1, 0]."""
    u = _chebyshev_nodes(-1.0, 0.0)
    basis = np.stack([u**j for j in range(degree + 1)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, 2.0**u, rcond=None)
    return coef


ATAN_COEF = fit_atan_odd()
LOG2_COEF = fit_log2_mantissa()
SIN_COEF = fit_sin_odd()
EXP2_COEF = fit_exp2()
