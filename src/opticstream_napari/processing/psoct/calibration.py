"""Wavelength calibration: where each camera pixel sits in k, and the uniform-k target grid.

Each camera's pixels follow a linear wavelength law fitted to calibration lines (``mu`` 1-based
pixel positions, ``wave_prime`` wavelengths in nm). Reconstruction resamples every spectrum from
those pixel wavelengths onto one grid uniform in wavenumber k = 2π/λ, so the FFT along k gives
depth. The grid runs from high k to low k (``K = flip(linspace(k_min, k_max, L))``) over the
range both cameras see, so the resampling never extrapolates beyond the edge segments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True, eq=False)
class Calibration:
    """Calibration lines of both cameras for spectra of ``spectral_length`` samples."""

    mu: npt.NDArray[np.float64]
    wave_prime: npt.NDArray[np.float64]
    spectral_length: int

    def __post_init__(self) -> None:
        mu = np.asarray(self.mu, dtype=np.float64)
        wave = np.asarray(self.wave_prime, dtype=np.float64).reshape(-1)
        length = self.spectral_length
        if mu.ndim != 2 or mu.shape[1] != 2 or mu.shape[0] != wave.size or wave.size < 2:
            raise ValueError(
                f"calibration needs mu of shape (N, 2) and N >= 2 wavelengths, found mu "
                f"{mu.shape} and {wave.size} wavelengths"
            )
        if not (np.isfinite(mu).all() and np.isfinite(wave).all() and (wave > 0).all()):
            raise ValueError("calibration needs finite pixel positions and positive wavelengths")
        if mu.min() < 1 or mu.max() > length:
            raise ValueError(
                f"calibration pixel positions must lie within 1..{length} (the spectral length), "
                f"found {mu.min():g}..{mu.max():g}"
            )
        if any(np.ptp(mu[:, c]) == 0 for c in (0, 1)):
            raise ValueError("calibration needs distinct pixel positions for each camera")
        object.__setattr__(self, "mu", mu)
        object.__setattr__(self, "wave_prime", wave)

    def pixel_wavelengths_nm(self) -> npt.NDArray[np.float64]:
        """(2, L): each camera's least-squares line evaluated at pixels 1..L."""
        pixels = np.arange(1, self.spectral_length + 1, dtype=np.float64)
        fits = [np.polyfit(self.mu[:, camera], self.wave_prime, 1) for camera in (0, 1)]
        lam = np.stack([np.polyval(fit, pixels) for fit in fits])
        if np.any(lam <= 0) or not np.all(np.diff(lam, axis=1) > 0):
            raise ValueError("calibration must give positive wavelengths increasing with pixel index")
        return lam

    def target_wavelengths_nm(self) -> npt.NDArray[np.float64]:
        """(L,): the uniform-k grid as wavelengths, shortest first."""
        lam = self.pixel_wavelengths_nm()
        k_min = 2 * np.pi / min(lam[0, -1], lam[1, -1])
        k_max = 2 * np.pi / max(lam[0, 0], lam[1, 0])
        return 2 * np.pi / np.linspace(k_min, k_max, self.spectral_length)[::-1]

    def resampling(self) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]:
        """Per camera: left neighbour index and weight of each target sample.

        ``out[k] = s[i[k]] * (1 - w[k]) + s[i[k] + 1] * w[k]``.
        """
        lam = self.pixel_wavelengths_nm()
        target = self.target_wavelengths_nm()
        length = self.spectral_length
        index = np.empty((2, length), dtype=np.int32)
        weight = np.empty((2, length), dtype=np.float32)
        for camera in range(2):
            grid = lam[camera]
            left = np.clip(np.searchsorted(grid, target, side="right") - 1, 0, length - 2)
            index[camera] = left
            weight[camera] = (target - grid[left]) / (grid[left + 1] - grid[left])
        return index, weight
