"""En-face maps from the volumes under the surface (spec 4.4).

The window of each A-line starts ``offset`` samples below the surface and holds ``length + 1``
samples (inclusive end, as the original), clipped to the volume. Orientation is 180°-periodic,
so it is averaged as the circular mean of the doubled angle; ``weighted_circular_mean`` weights
each sample by I·sin(2δ) = 2|J1·J2*|, which is the phase of Σ J1·conj(J2): samples where the
retardance δ is near 0 (just under the surface) carry no orientation and no longer add noise.
Birefringence is the slope of optical path difference (retardance/360 · λ) against depth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np
import numpy.typing as npt

from opticstream_napari.processing.psoct.approx import EXP2_COEF, SIN_COEF

Float32Array = npt.NDArray[np.float32]
BIREF_METHODS = ("legacy", "robust")
ORIENTATION_METHODS = ("weighted_circular_mean", "circular_mean", "mean")
HUBER_K = 1.345
ROBUST_ITERATIONS = 6
_SIN = tuple(float(c) for c in SIN_COEF)
_EXP2 = tuple(float(c) for c in EXP2_COEF)
_HALF_PI = np.float32(np.pi / 2)
_PI = np.float32(np.pi)
_DOUBLED_RAD = np.float32(np.pi / 90)  # degrees -> radians of twice the angle
_LOG2_PER_DB = np.float32(np.log2(10.0) / 10)
_EXP2_FLOOR = np.float32(-64.0)  # weights below 2**-64 of the brightest sample count as that
_EXP2_SQUARINGS = 6  # 2**y = (2**(y / 64))**64, with y / 64 in [-1, 0] where the polynomial fits


@dataclass(frozen=True, slots=True)
class EnfaceParams:
    offset: int = 0
    length: int = 70
    wavelength_um: float = 1.3
    axial_um: float = 2.5
    orientation: str = "weighted_circular_mean"
    birefringence: str = "legacy"


@nb.njit(inline="always", fastmath=True)
def _slope(x_step, values, n, weights):  # pragma: no cover - numba
    sw = 0.0
    sx = 0.0
    sy = 0.0
    for i in range(n):
        sw += weights[i]
        sx += weights[i] * i
        sy += weights[i] * values[i]
    if sw <= 0:
        return 0.0, 0.0
    mx = sx / sw
    my = sy / sw
    sxx = 0.0
    sxy = 0.0
    for i in range(n):
        dx = i - mx
        sxx += weights[i] * dx * dx
        sxy += weights[i] * dx * (values[i] - my)
    if sxx <= 0:
        return 0.0, my
    slope = sxy / sxx
    return slope / x_step, my - slope * mx


@nb.njit(inline="always", fastmath=True)
def _sin_half(x):  # pragma: no cover - numba
    """sin(x) for |x| <= π/2."""
    s = x * x
    acc = np.float32(_SIN[-1])
    for j in range(len(_SIN) - 2, -1, -1):
        acc = acc * s + np.float32(_SIN[j])
    return acc * x


@nb.njit(inline="always", fastmath=True)
def _sin_cos(x):  # pragma: no cover - numba
    """(sin x, cos x) for |x| <= π, by folding onto [−π/2, π/2]."""
    ax = abs(x)
    folded = _PI - ax if ax > _HALF_PI else ax
    sine = _sin_half(folded)
    return (-sine if x < 0 else sine), _sin_half(_HALF_PI - ax)


@nb.njit(inline="always", fastmath=True)
def _exp2_nonpositive(y):  # pragma: no cover - numba
    """2**y for y <= 0 (floored at 2**-64), relative error below 1e-6."""
    u = max(y, _EXP2_FLOOR) * np.float32(1.0 / 64.0)
    acc = np.float32(_EXP2[-1])
    for j in range(len(_EXP2) - 2, -1, -1):
        acc = acc * u + np.float32(_EXP2[j])
    for _ in range(_EXP2_SQUARINGS):
        acc = acc * acc
    return acc


@nb.njit(nogil=True, cache=True, fastmath=True)
def _enface(dbi, r3d, o3d, surface, offset, length, opd_scale, axial_um, orientation, robust,
            aip, mip, ret, ori, biref):  # pragma: no cover - numba
    """orientation: 0 weighted circular mean, 1 circular mean, 2 plain mean.

    The weights I·|sin 2δ| are taken relative to the window's brightest sample (the mean angle
    does not change with a common scale), so 10**(dB/10) becomes 2**y with y <= 0, which the
    polynomial covers; sin and cos are polynomials too, so the window loop vectorises.
    """
    rows, depth = dbi.shape
    opd = np.empty(length + 1, dtype=np.float64)
    weights = np.empty(length + 1, dtype=np.float64)
    for r in range(rows):
        z1 = min(max(surface[r] + offset, 0), depth - 1)
        z2 = min(depth - 1, z1 + length)
        n = z2 - z1 + 1
        s_dbi = 0.0
        m_dbi = dbi[r, z1]
        s_ret = 0.0
        s_ori = 0.0
        for z in range(z1, z2 + 1):
            v = dbi[r, z]
            s_dbi += v
            m_dbi = max(m_dbi, v)
            s_ret += r3d[r, z]
            s_ori += o3d[r, z]
        aip[r] = s_dbi / n
        mip[r] = m_dbi
        ret[r] = s_ret / n
        if orientation == 2:
            ori[r] = s_ori / n
        else:
            s_cos = np.float32(0.0)
            s_sin = np.float32(0.0)
            for z in range(z1, z2 + 1):
                weight = np.float32(1.0)
                if orientation == 0:
                    retardance = abs(r3d[r, z] * _DOUBLED_RAD - _HALF_PI)
                    weight = _exp2_nonpositive((dbi[r, z] - m_dbi) * _LOG2_PER_DB) * _sin_half(_HALF_PI - retardance)
                sine, cosine = _sin_cos(o3d[r, z] * _DOUBLED_RAD)
                s_cos += weight * cosine
                s_sin += weight * sine
            ori[r] = 0.5 * np.rad2deg(np.arctan2(s_sin, s_cos))
        count = 0
        for z in range(z1, z2 + 1):
            if r3d[r, z] == 0:
                break
            opd[count] = r3d[r, z] * opd_scale
            weights[count] = 1.0
            count += 1
        if count < 3:
            biref[r] = 0.0
            continue
        slope, intercept = _slope(axial_um, opd, count, weights)
        if robust:
            for _ in range(ROBUST_ITERATIONS):
                residual = np.empty(count)
                for i in range(count):
                    residual[i] = abs(opd[i] - (intercept + slope * axial_um * i))
                scale = 1.4826 * np.median(residual) + 1e-12
                for i in range(count):
                    u = residual[i] / (HUBER_K * scale)
                    weights[i] = 1.0 if u <= 1.0 else 1.0 / u
                slope, intercept = _slope(axial_um, opd, count, weights)
        biref[r] = slope


def enface_maps(
    dbi: Float32Array,
    r3d: Float32Array,
    o3d: Float32Array,
    surface: npt.NDArray[np.int32],
    params: EnfaceParams = EnfaceParams(),
) -> dict[str, Float32Array]:
    """AIP, MIP (dB), RET, ORI (degrees), BIREF (Δn, unitless) and SURF (depth index).

    Volumes are (..., depth); ``surface`` has the leading shape.
    """
    if params.orientation not in ORIENTATION_METHODS:
        raise ValueError(f"orientation method must be one of {ORIENTATION_METHODS}, found {params.orientation!r}")
    if params.birefringence not in BIREF_METHODS:
        raise ValueError(f"birefringence method must be one of {BIREF_METHODS}, found {params.birefringence!r}")
    if not dbi.shape == r3d.shape == o3d.shape or surface.shape != dbi.shape[:-1]:
        raise ValueError(
            f"volumes and surface disagree: dBI {dbi.shape}, R3D {r3d.shape}, O3D {o3d.shape}, "
            f"surface {surface.shape}"
        )
    lead = dbi.shape[:-1]
    flat = [np.ascontiguousarray(v).reshape(-1, v.shape[-1]) for v in (dbi, r3d, o3d)]
    maps = {name: np.empty(flat[0].shape[0], dtype=np.float32) for name in ("aip", "mip", "ret", "ori", "biref")}
    _enface(
        *flat, np.ascontiguousarray(surface, dtype=np.int32).reshape(-1),
        params.offset, params.length, params.wavelength_um / 360.0, params.axial_um,
        ORIENTATION_METHODS.index(params.orientation), params.birefringence == "robust",
        maps["aip"], maps["mip"], maps["ret"], maps["ori"], maps["biref"],
    )
    result = {name: value.reshape(lead) for name, value in maps.items()}
    result["surf"] = surface.astype(np.float32)
    return result
