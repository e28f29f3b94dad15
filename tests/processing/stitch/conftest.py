"""Stitching test helpers: a synthetic textured sample and tiles cut from it at exact sub-pixel
positions (the ``synthetic`` fixture hands them to tests, as helper modules are not importable
under ``--import-mode=importlib``).

The canvas is periodic and band-limited, so a Fourier phase ramp samples it exactly at any
real-valued origin: tiles of a jittered grid then agree on their overlaps to float precision,
and the jitter is the ground truth placement.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import scipy.fft

from opticstream_napari.layout import Grid


class TexturedCanvas:
    """Smoothed noise plus larger bright blobs (like tissue structure), unit variance."""

    def __init__(self, size: int = 1024, seed: int = 0, sigma: float = 1.5) -> None:
        rng = np.random.default_rng(seed)
        fy = scipy.fft.fftfreq(size)[:, None]
        fx = scipy.fft.rfftfreq(size)[None, :]
        radius2 = fy**2 + fx**2

        def smoothed(s: float) -> np.ndarray:
            noise = scipy.fft.rfft2(rng.standard_normal((size, size)))
            return scipy.fft.irfft2(noise * np.exp(-2 * (np.pi * s) ** 2 * radius2), s=(size, size))

        fine = smoothed(sigma)
        coarse = smoothed(10.0)
        canvas = fine / fine.std() + 3.0 * (coarse > np.quantile(coarse, 0.7))
        self.size = size
        self._spectrum = scipy.fft.rfft2(canvas) * np.exp(-2 * (np.pi * 1.0) ** 2 * radius2)
        self._fy = fy
        self._fx = fx
        self.std = float(scipy.fft.irfft2(self._spectrum, s=(size, size)).std())

    def tile(self, y: float, x: float, shape: tuple[int, int]) -> np.ndarray:
        """The canvas sampled on ``shape`` pixels starting at the real-valued ``(y, x)``."""
        iy, ix = int(np.floor(y)), int(np.floor(x))
        ramp = np.exp(2j * np.pi * (self._fy * (y - iy) + self._fx * (x - ix)))
        shifted = scipy.fft.irfft2(self._spectrum * ramp, s=(self.size, self.size))
        rows = np.arange(iy, iy + shape[0]) % self.size
        cols = np.arange(ix, ix + shape[1]) % self.size
        return (shifted[np.ix_(rows, cols)] / self.std).astype(np.float32)


def jittered_grid(
    canvas: TexturedCanvas,
    grid: Grid,
    tile_shape: tuple[int, int],
    overlap: float,
    *,
    jitter: float = 1.5,
    noise: float = 0.05,
    seed: int = 1,
) -> tuple[dict[int, np.ndarray], dict[int, tuple[float, float]]]:
    """Tiles of ``grid`` at nominal positions plus uniform sub-pixel jitter, with pixel noise.

    Returns (tiles, true positions), both keyed by 1-based tile index.
    """
    rng = np.random.default_rng(seed)
    step = (tile_shape[0] - round(overlap * tile_shape[0]), tile_shape[1] - round(overlap * tile_shape[1]))
    tiles, truth = {}, {}
    for t in range(1, grid.tile_count + 1):
        row, col = grid.position(t)
        y = 20.0 + row * step[0] + rng.uniform(-jitter, jitter)
        x = 20.0 + col * step[1] + rng.uniform(-jitter, jitter)
        data = canvas.tile(y, x, tile_shape)
        tiles[t] = data + noise * rng.standard_normal(tile_shape).astype(np.float32)
        truth[t] = (y, x)
    return tiles, truth


def placement_rms(
    positions: dict[int, tuple[float, float]], truth: dict[int, tuple[float, float]]
) -> float:
    """RMS distance to the truth after removing the best common translation."""
    keys = sorted(truth)
    error = np.asarray([positions[k] for k in keys]) - np.asarray([truth[k] for k in keys])
    error -= error.mean(axis=0)
    return float(np.sqrt((error**2).sum(axis=1).mean()))


@pytest.fixture(scope="session")
def synthetic() -> SimpleNamespace:
    """``TexturedCanvas``, ``jittered_grid`` and ``placement_rms`` for the stitching tests."""
    return SimpleNamespace(
        TexturedCanvas=TexturedCanvas, jittered_grid=jittered_grid, placement_rms=placement_rms
    )
