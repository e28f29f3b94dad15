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

Float32Array = npt.NDArray[np.float32]
BIREF_METHODS = ("legacy", "robust")
ORIENTATION_METHODS = ("weighted_circular_mean", "circular_mean", "mean")
HUBER_K = 1.345
ROBUST_ITERATIONS = 6


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


@nb.njit(nogil=True, cache=True, fastmath=True)
def _enface(dbi, r3d, o3d, surface, offset, length, opd_scale, axial_um, orientation, robust,
            aip, mip, ret, ori, biref):  # pragma: no cover - numba
    """orientation: 0 weighted circular mean, 1 circular mean, 2 plain mean."""
    rows, depth = dbi.shape
    opd = np.empty(length + 1, dtype=np.float64)
    weights = np.empty(length + 1, dtype=np.float64)
    for r in range(rows):
        z1 = min(max(surface[r] + offset, 0), depth - 1)
        z2 = min(depth - 1, z1 + length)
        n = z2 - z1 + 1
        s_dbi = 0.0
        m_dbi = -np.inf
        s_ret = 0.0
        s_cos = 0.0
        s_sin = 0.0
        s_ori = 0.0
        for z in range(z1, z2 + 1):
            v = dbi[r, z]
            s_dbi += v
            m_dbi = max(m_dbi, v)
            s_ret += r3d[r, z]
            angle = np.deg2rad(2.0 * o3d[r, z])
            weight = 1.0
            if orientation == 0:
                weight = 10.0 ** (0.1 * v) * abs(np.sin(np.deg2rad(2.0 * r3d[r, z])))
            s_cos += weight * np.cos(angle)
            s_sin += weight * np.sin(angle)
            s_ori += o3d[r, z]
        aip[r] = s_dbi / n
        mip[r] = m_dbi
        ret[r] = s_ret / n
        ori[r] = 0.5 * np.rad2deg(np.arctan2(s_sin, s_cos)) if orientation < 2 else s_ori / n
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
