"""Checks of reconstruction inputs that need the numbers, not the files.

Each returns ``None`` when the input is fine, or an :class:`InputProblem` saying what was
checked, what was expected and what was found; the caller that knows the file name turns it
into an error, so every message names the file, the expectation and the finding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from opticstream_napari.processing.psoct.calibration import Calibration

FULL_SCALE = {12: 4095, 16: 65535}
DEFAULT_MAX_SATURATED_FRACTION = 1e-3


@dataclass(frozen=True, slots=True)
class InputProblem:
    what: str
    expected: str
    found: str


def saturation_problem(
    saturated: npt.NDArray[np.int64], samples_per_camera: int, full_scale: int, max_fraction: float
) -> InputProblem | None:
    """Too many samples at the camera's full scale: clipped fringes alias into every depth.

    ``saturated`` is the (B-lines, 2) count from :class:`TileResult`; the limit applies to each
    camera's share of its ``samples_per_camera`` samples.
    """
    counts = np.asarray(saturated).sum(axis=0)
    fractions = counts / samples_per_camera
    camera = int(np.argmax(fractions))
    if fractions[camera] <= max_fraction:
        return None
    return InputProblem(
        f"saturated spectral samples (at full scale {full_scale})",
        f"at most {max_fraction:.4%} of each camera's samples",
        f"{fractions[camera]:.4%} of camera {camera + 1}'s ({int(counts[camera])} of {samples_per_camera})",
    )


def nonfinite_problem(*arrays: npt.NDArray[np.generic]) -> InputProblem | None:
    """NaN or infinity anywhere: one such sample poisons every map derived from its A-line."""
    bad = sum(int(np.count_nonzero(~np.isfinite(a))) for a in arrays)
    if not bad:
        return None
    total = sum(a.size for a in arrays)
    return InputProblem("complex samples", "finite values", f"{bad} of {total} NaN or infinite")


def calibration_problem(calibration: Calibration) -> InputProblem | None:
    """A calibration whose wavelength law cannot resample this spectral length.

    Both cameras' fitted wavelengths must be positive and increase with the pixel index, and
    their bands must overlap, because the uniform-k grid spans the band both cameras see.
    """
    try:
        lam = calibration.pixel_wavelengths_nm()
    except ValueError as error:
        return InputProblem(
            f"wavelength law over pixels 1..{calibration.spectral_length}",
            "positive wavelengths increasing with pixel index",
            str(error),
        )
    low, high = max(lam[0, 0], lam[1, 0]), min(lam[0, -1], lam[1, -1])
    if low >= high:
        return InputProblem(
            f"camera bands over pixels 1..{calibration.spectral_length}",
            "overlapping wavelength ranges",
            f"camera 1 {lam[0, 0]:.1f}-{lam[0, -1]:.1f} nm, camera 2 {lam[1, 0]:.1f}-{lam[1, -1]:.1f} nm",
        )
    return None
