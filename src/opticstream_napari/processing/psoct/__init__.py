"""PS-OCT tile reconstruction: spectral → complex → volumes → surface → en-face (spec 4.1–4.4).

One call per stage, and :func:`reconstruct_spectral_tile` for the whole tile. Arrays are laid
out (B-lines, A-lines, depth) = (y, x, z); en-face maps are (y, x). Usable from a notebook::

    rec = SpectralReconstructor(calibration, spectral_length=2048, alines=350)
    result = reconstruct_spectral_tile(spectra, rec, EnfaceParams())
    result.enface["ret"]
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from opticstream_napari.processing.psoct import kernels
from opticstream_napari.processing.psoct.calibration import Calibration
from opticstream_napari.processing.psoct.enface import EnfaceParams, enface_maps
from opticstream_napari.processing.psoct.spectral import (
    SpectralParams,
    SpectralReconstructor,
    Volumes,
)
from opticstream_napari.processing.psoct.tile import (
    StageTimes,
    TileResult,
    finish_tile,
    reconstruct_spectral_tile,
    resolve_surface,
    volume_buffers,
)

__all__ = [
    "Calibration",
    "EnfaceParams",
    "SpectralParams",
    "SpectralReconstructor",
    "StageTimes",
    "TileResult",
    "Volumes",
    "complex_to_volumes",
    "enface_maps",
    "finish_tile",
    "reconstruct_complex_tile",
    "reconstruct_spectral_tile",
    "resolve_surface",
    "spectral_to_complex",
    "volume_buffers",
]


def spectral_to_complex(
    spectra: npt.NDArray[np.uint16],
    calibration: Calibration,
    params: SpectralParams | None = None,
    dispersion: npt.NDArray[np.float64] | None = None,
) -> tuple[npt.NDArray[np.complex64], npt.NDArray[np.complex64]]:
    """J1, J2 (B-lines, A-lines, depth) of a (B-lines, 2, A-lines, L) spectral tile."""
    params = params or SpectralParams()
    rec = SpectralReconstructor(calibration, spectra.shape[-1], spectra.shape[2], params, dispersion)
    return rec.complex(spectra)


def complex_to_volumes(
    j1: npt.NDArray[np.complexfloating],
    j2: npt.NDArray[np.complexfloating],
    params: SpectralParams | None = None,
) -> Volumes:
    """dBI (dB), R3D and O3D (degrees) from complex depth profiles of any leading shape.

    Depth runs shallowest first, as :func:`read_complex_tile` returns it; ``flip_z`` False
    reverses it, as for spectral input.
    """
    params = params or SpectralParams()
    if j1.shape != j2.shape:
        raise ValueError(f"J1 and J2 differ in shape: {j1.shape} and {j2.shape}")
    depth = j1.shape[-1]
    a = np.ascontiguousarray(j1, dtype=np.complex64).reshape(-1, depth)
    b = np.ascontiguousarray(j2, dtype=np.complex64).reshape(-1, depth)
    out = Volumes(*(np.empty(a.shape, dtype=np.float32) for _ in range(3)))
    kernels.spectra_to_volumes(
        a, b, 0, np.float32(2 * np.deg2rad(params.phase_offset_deg)), params.flip_phase, not params.flip_z,
        out.dbi, out.r3d, out.o3d, np.empty(depth, np.float32), np.empty(depth, np.int32),
    )
    return Volumes(*(v.reshape(j1.shape) for v in (out.dbi, out.r3d, out.o3d)))


def reconstruct_complex_tile(
    j1: npt.NDArray[np.complexfloating],
    j2: npt.NDArray[np.complexfloating],
    params: SpectralParams,
    enface: EnfaceParams,
    surface: str | int | npt.NDArray[np.integer] = "gradient",
) -> TileResult:
    """The whole tile from complex inputs (B-lines, A-lines, depth)."""
    return finish_tile(complex_to_volumes(j1, j2, params), enface, surface)
