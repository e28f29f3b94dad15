"""Focus plane (field curvature) from surface disagreements between tiles, and the depth crop.

Every tile sees the tissue surface S plus the same tile-local curvature P(y, x). Where two
tiles overlap, S cancels: s1 - s2 = P(y1, x1) - P(y2, x2). A polynomial P without constant is
fitted to those differences (IQR outlier removal, then a Huber-loss least squares), the
constant is mean(s - P) over all valid surface pixels, and the plane that volumes are
flattened with is P evaluated on the tile grid and shifted so its minimum is 0 (spec 4.9).
Coordinates are normalised to [-1, 1] across the tile so the fit is well conditioned at any
degree.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numba as nb
import numpy as np
from scipy.optimize import least_squares


def _exponents(degree: int) -> list[tuple[int, int]]:
    return [(p, t - p) for t in range(1, degree + 1) for p in range(t, -1, -1)]


def _normalised(index: np.ndarray, size: int) -> np.ndarray:
    half = max(size - 1, 1) / 2
    return (index - half) / half


def _features(y: np.ndarray, x: np.ndarray, tile_shape: tuple[int, int], degree: int) -> np.ndarray:
    u = _normalised(np.asarray(y, dtype=float), tile_shape[0])
    v = _normalised(np.asarray(x, dtype=float), tile_shape[1])
    return np.stack([u**p * v**q for p, q in _exponents(degree)], axis=-1)


@dataclass(frozen=True, eq=False)
class FocusPlane:
    """A fitted tile-local polynomial: ``coefficients`` of its non-constant monomials.

    ``samples`` overlap pixel pairs were fitted after ``outliers`` were dropped by the IQR rule.
    """

    coefficients: np.ndarray
    degree: int
    tile_shape: tuple[int, int]
    constant: float
    samples: int = 0
    outliers: int = 0

    def terms(self) -> list[tuple[int, int, float]]:
        """``(power of y, power of x, coefficient)`` per monomial, y and x normalised to [-1, 1]."""
        return [(p, q, float(c)) for (p, q), c in zip(_exponents(self.degree), self.coefficients, strict=True)]

    def curvature(self) -> np.ndarray:
        """P without its constant on the ``(y, x)`` tile grid."""
        y, x = np.indices(self.tile_shape)
        return _features(y, x, self.tile_shape, self.degree) @ self.coefficients

    def surface(self) -> np.ndarray:
        """P + constant: the mean surface depth each tile pixel sees."""
        return self.curvature() + self.constant

    def plane(self) -> np.ndarray:
        """Min-normalised float32 plane: what is saved and used to crop volumes."""
        curvature = self.curvature()
        return (curvature - curvature.min()).astype(np.float32)


def tiles_above_signal(aip_means: Mapping[Hashable, float], threshold: float) -> list[Hashable]:
    """Tiles bright enough (mean AIP ≥ threshold dB) to have a trustworthy surface."""
    return [key for key, mean in aip_means.items() if mean >= threshold]


def fit_focus_plane(
    surfaces: Mapping[Hashable, np.ndarray],
    offsets: Mapping[Hashable, Sequence[int]],
    degree: int = 2,
    *,
    crop_x: int = 15,
    iqr_factor: float = 1.5,
    max_samples: int = 200_000,
    seed: int = 0,
) -> FocusPlane:
    """Fit the shared curvature from the overlaps of ``surfaces`` placed at ``offsets``.

    ``surfaces`` are ``(y, x)`` surface-depth tiles (valid where > 0 and finite), ``offsets``
    their integer ``(y, x)`` canvas positions. The first ``crop_x`` columns of every tile (the
    scan's turnaround) are ignored. Overlap pixels are subsampled to about ``max_samples``
    with a fixed seed, which keeps the fit fast on large grids and reproducible.
    """
    if not 1 <= degree <= 3:
        raise ValueError(f"focus plane degree must be 1, 2 or 3, found {degree}")
    keys = [k for k in surfaces if k in offsets]
    shapes = {surfaces[k].shape for k in keys}
    if len(shapes) != 1:
        raise ValueError(f"focus fit needs tiles of one 2D shape, found {sorted(shapes)}")
    tile_shape: tuple[int, int] = shapes.pop()
    pairs = _overlapping_pairs(keys, offsets, tile_shape)
    if not pairs:
        raise ValueError("focus fit needs at least two overlapping tiles")
    area = sum(int(np.prod([b - a for a, b in box])) for _, _, box in pairs)
    rng = np.random.default_rng(seed)
    rate = min(1.0, max_samples / max(area, 1))
    rows, targets = [], []
    for k1, k2, box in pairs:
        picked = _pair_samples(surfaces[k1], surfaces[k2], offsets[k1], offsets[k2], box, crop_x)
        if picked is None:
            continue
        (y1, x1), (y2, x2), diff = picked
        keep = rng.random(diff.size) < rate
        rows.append(
            _features(y1[keep], x1[keep], tile_shape, degree)
            - _features(y2[keep], x2[keep], tile_shape, degree)
        )
        targets.append(diff[keep])
    if not targets or sum(t.size for t in targets) < len(_exponents(degree)):
        raise ValueError("too few valid overlapping surface pixels to fit a focus plane")
    design = np.concatenate(rows)
    target = np.concatenate(targets)
    q1, q3 = np.percentile(target, [25, 75])
    spread = iqr_factor * (q3 - q1)
    inlier = (target >= q1 - spread) & (target <= q3 + spread)
    design, target = design[inlier], target[inlier]
    fit = least_squares(
        lambda p: design @ p - target,
        np.zeros(design.shape[1]),
        jac=lambda p: design,
        method="trf",
        loss="huber",
        f_scale=1.0,
    )
    plane = FocusPlane(fit.x, degree, tile_shape, 0.0)
    return FocusPlane(fit.x, degree, tile_shape, _mean_offset(surfaces, keys, plane, crop_x),
                      samples=int(target.size), outliers=int(inlier.size - target.size))


def _overlapping_pairs(
    keys: list[Hashable], offsets: Mapping[Hashable, Sequence[int]], tile_shape: tuple[int, int]
) -> list[tuple[Hashable, Hashable, tuple[tuple[int, int], tuple[int, int]]]]:
    h, w = tile_shape
    pairs = []
    for i, k1 in enumerate(keys):
        y1, x1 = (int(v) for v in offsets[k1])
        for k2 in keys[i + 1 :]:
            y2, x2 = (int(v) for v in offsets[k2])
            rows = (max(y1, y2), min(y1, y2) + h)
            cols = (max(x1, x2), min(x1, x2) + w)
            if rows[0] < rows[1] and cols[0] < cols[1]:
                pairs.append((k1, k2, (rows, cols)))
    return pairs


def _pair_samples(
    s1: np.ndarray,
    s2: np.ndarray,
    at1: Sequence[int],
    at2: Sequence[int],
    box: tuple[tuple[int, int], tuple[int, int]],
    crop_x: int,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray], np.ndarray] | None:
    """Local coordinates in both tiles and the surface difference, at valid overlap pixels."""
    (r0, r1), (c0, c1) = box
    gy, gx = np.mgrid[r0:r1, c0:c1]
    y1, x1 = gy - at1[0], gx - at1[1]
    y2, x2 = gy - at2[0], gx - at2[1]
    v1 = s1[y1, x1].astype(float)
    v2 = s2[y2, x2].astype(float)
    valid = (v1 > 0) & (v2 > 0) & np.isfinite(v1) & np.isfinite(v2)
    valid &= (x1 >= crop_x) & (x2 >= crop_x)
    if not valid.any():
        return None
    return (y1[valid], x1[valid]), (y2[valid], x2[valid]), (v1 - v2)[valid]


def _mean_offset(
    surfaces: Mapping[Hashable, np.ndarray], keys: list[Hashable], plane: FocusPlane, crop_x: int
) -> float:
    curvature = plane.curvature()
    total, count = 0.0, 0
    for key in keys:
        s = surfaces[key].astype(float)
        valid = (s > 0) & np.isfinite(s)
        valid[:, :crop_x] = False
        total += float((s - curvature)[valid].sum())
        count += int(valid.sum())
    return total / count if count else 0.0


def focus_crop(
    volume: np.ndarray, plane: np.ndarray, offset: int, depth: int
) -> np.ndarray:
    """Flatten field curvature: ``out[k, y, x] = volume[start(y, x) + k, y, x]``.

    ``start = floor(plane) + offset`` (config ``crop_focus_plane_offset``); ``depth`` samples
    are kept (``crop_focus_plane_depth``). Samples past the end of the tile are NaN, so they
    carry no weight when blended instead of pulling the mosaic towards zero.
    """
    if volume.ndim != 3 or volume.shape[1:] != plane.shape:
        raise ValueError(f"volume {volume.shape} (z, y, x) does not match plane {plane.shape}")
    if depth < 1:
        raise ValueError(f"crop depth must be >= 1, found {depth}")
    start = np.floor(plane).astype(np.int64) + int(offset)
    out = np.empty((depth, *plane.shape), dtype=np.float32)
    _gather(volume, start, out)
    return out


@nb.njit(nogil=True, cache=True)
def _gather(volume, start, out):
    depth, ny, nx = out.shape
    nz = volume.shape[0]
    for k in range(depth):
        for j in range(ny):
            for i in range(nx):
                z = start[j, i] + k
                out[k, j, i] = volume[z, j, i] if 0 <= z < nz else np.nan
