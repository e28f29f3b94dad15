"""Focus plane: recovers a known tile-local polynomial up to a constant; depth crop."""

from __future__ import annotations

import numpy as np
import pytest

from opticstream_napari.processing.stitch.focus import (
    fit_focus_plane,
    focus_crop,
    tiles_above_signal,
)

TILE = (60, 100)


def _normalised(n: int) -> np.ndarray:
    return (np.arange(n) - (n - 1) / 2) / ((n - 1) / 2)


def _curvature(degree: int) -> np.ndarray:
    u = _normalised(TILE[0])[:, None]
    v = _normalised(TILE[1])[None, :]
    surface = 0.8 * u - 1.2 * v
    if degree >= 2:
        surface = surface + 3.0 * u**2 + 1.5 * u * v + 2.0 * v**2
    if degree >= 3:
        surface = surface + 1.0 * u**3 - 0.7 * u * v**2 + 0.5 * v**3
    return surface


def _tiles(curvature: np.ndarray, seed: int = 0):
    """A 4×4 grid at 25-30 % overlap seeing one tissue surface through the same curvature."""
    rng = np.random.default_rng(seed)
    offsets = {(r, c): (r * 45, c * 70) for r in range(4) for c in range(4)}
    y, x = np.indices(TILE)
    surfaces = {}
    for key, (oy, ox) in offsets.items():
        tissue = 100.0 + 0.02 * (y + oy) + 5.0 * np.sin((x + ox) / 50.0)
        s = tissue + curvature + rng.normal(0, 0.2, TILE)
        outliers = rng.random(TILE) < 0.01
        s[outliers] += 40.0
        s[rng.random(TILE) < 0.02] = 0.0
        s[rng.random(TILE) < 0.01] = np.nan
        surfaces[key] = s
    return surfaces, offsets


@pytest.mark.parametrize("degree", [1, 2, 3])
def test_recovers_a_known_polynomial_up_to_a_constant(degree: int) -> None:
    truth = _curvature(degree)
    surfaces, offsets = _tiles(truth)
    plane = fit_focus_plane(surfaces, offsets, degree=degree)
    error = plane.curvature() - truth
    assert np.sqrt(np.mean(error**2)) < 0.05 and np.abs(error).max() < 0.25
    normalised = plane.plane()
    assert normalised.dtype == np.float32 and normalised.shape == TILE
    assert normalised.min() == 0.0
    np.testing.assert_allclose(normalised, truth - truth.min(), atol=0.3)


def test_constant_is_the_mean_surface_minus_the_curvature() -> None:
    truth = _curvature(2)
    surfaces, offsets = _tiles(truth, seed=1)
    plane = fit_focus_plane(surfaces, offsets, degree=2)
    residual = np.concatenate(
        [(s - truth)[:, 15:][((s > 0) & np.isfinite(s))[:, 15:]] for s in surfaces.values()]
    )
    assert abs(plane.constant - residual.mean()) < 0.05
    np.testing.assert_allclose(plane.surface(), plane.curvature() + plane.constant)


def test_needs_overlapping_tiles() -> None:
    with pytest.raises(ValueError, match="overlapping"):
        fit_focus_plane({0: np.ones(TILE), 1: np.ones(TILE)}, {0: (0, 0), 1: (0, 500)})
    with pytest.raises(ValueError, match="degree"):
        fit_focus_plane({0: np.ones(TILE)}, {0: (0, 0)}, degree=4)


def test_tiles_above_signal() -> None:
    assert tiles_above_signal({1: 61.0, 2: 59.9, 3: 60.0}, 60.0) == [1, 3]


def test_focus_crop_flattens_and_pads_with_nan() -> None:
    volume = np.broadcast_to(np.arange(30, dtype=np.float32)[:, None, None], (30, 6, 7)).copy()
    plane = np.tile(np.linspace(0, 5.5, 7, dtype=np.float32), (6, 1))
    cropped = focus_crop(volume, plane, offset=2, depth=25)
    start = np.floor(plane).astype(int) + 2
    assert cropped.shape == (25, 6, 7)
    for k in (0, 10, 24):
        expected = np.where(start + k < 30, start + k, np.nan)
        np.testing.assert_array_equal(cropped[k], expected)
    with pytest.raises(ValueError, match="does not match"):
        focus_crop(volume, plane[:, :3], 0, 5)
