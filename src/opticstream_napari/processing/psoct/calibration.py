"""Wavelength calibration: where each camera pixel sits in k, and the uniform-k target grid.

Each camera's pixels follow a linear wavelength law fitted to calibration lines (``mu`` pixel
positions, ``wave_prime`` wavelengths in nm). Reconstruction resamples every spectrum from those
pixel wavelengths onto one grid that is uniform in wavenumber k = 2π/λ, so the FFT along k gives
depth. The grid runs from high k to low k (``K = flip(linspace(k_min, k_max, L))``), the order
in which the spectrometer's pixels see wavelength increase.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class Calibration:
    """Calibration lines: ``mu`` (N×2 pixel positions, 1-based, left/right camera), ``wave_nm``."""

    mu: npt.NDArray[np.float64]
    wave_nm: npt.NDArray[np.float64]

    def __post_init__(self) -> None:
        mu = np.asarray(self.mu, dtype=np.float64)
        wave = np.asarray(self.wave_nm, dtype=np.float64).reshape(-1)
        if mu.ndim != 2 or mu.shape[1] != 2 or mu.shape[0] != wave.size or wave.size < 2:
            raise ValueError(
                f"calibration needs mu of shape (N, 2) and N >= 2 wavelengths, found mu "
                f"{mu.shape} and {wave.size} wavelengths"
            )
        object.__setattr__(self, "mu", mu)
        object.__setattr__(self, "wave_nm", wave)

    def pixel_wavelengths_m(self, length: int) -> npt.NDArray[np.float64]:
        """(2, L) wavelength of each pixel of each camera, from a least-squares line per camera."""
        pixels = np.arange(1, length + 1, dtype=np.float64)
        out = np.empty((2, length))
        for camera in range(2):
            slope, intercept = np.polyfit(self.mu[:, camera], self.wave_nm, 1)
            out[camera] = (slope * pixels + intercept) * 1e-9
        if np.any(out <= 0):
            raise ValueError(f"calibration gives non-positive wavelengths over {length} pixels")
        return out

    def target_wavenumbers(self, length: int) -> npt.NDArray[np.float64]:
        """The uniform-k grid (rad/m), high k first, spanning what both cameras see."""
        lam = self.pixel_wavelengths_m(length)
        k_min = 2 * np.pi / min(lam[0, -1], lam[1, -1])
        k_max = 2 * np.pi / max(lam[0, 0], lam[1, 0])
        return np.linspace(k_min, k_max, length)[::-1].copy()

    def resampling(self, length: int) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]:
        """Per camera: left neighbour index and weight of each target sample (linear, extrapolated).

        ``out[k] = s[i0[k]] * (1 - w[k]) + s[i0[k] + 1] * w[k]``; weights outside [0, 1] extrapolate
        the edge segments, as the original's interpolation did.
        """
        lam = self.pixel_wavelengths_m(length)
        target = 2 * np.pi / self.target_wavenumbers(length)
        index = np.empty((2, length), dtype=np.int32)
        weight = np.empty((2, length), dtype=np.float32)
        for camera in range(2):
            grid = lam[camera]
            if not np.all(np.diff(grid) > 0):
                raise ValueError(f"camera {camera + 1} wavelengths must increase with pixel index")
            left = np.clip(np.searchsorted(grid, target, side="right") - 1, 0, length - 2)
            index[camera] = left
            weight[camera] = (target - grid[left]) / (grid[left + 1] - grid[left])
        return index, weight
