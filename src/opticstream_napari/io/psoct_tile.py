"""One PS-OCT tile file in, its outputs out: read, validate, reconstruct, write; one call.

The engine calls :func:`reconstruct_tile_file` (or :meth:`TileProcessor.process`, which keeps
the calibration, the reconstructors and the volume buffers between tiles). Every bad input
raises :class:`RawTileError` naming the file, what was expected and what was found, before
anything is written; outputs appear all together or not at all (:mod:`io.psoct_outputs`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from opticstream_napari.config import PSOCTScanConfig, TileSavingType
from opticstream_napari.io.nifti import read_enface_nifti
from opticstream_napari.io.psoct_outputs import write_tile_outputs
from opticstream_napari.io.psoct_raw import (
    RawTileError,
    TileGeometry,
    full_depth,
    read_calibration,
    read_complex_tile,
    read_dispersion,
    read_spectral_tile,
)
from opticstream_napari.layout import mosaic_role
from opticstream_napari.naming import CALIBRATION_FILE, NameParseError, RawTileKind, parse_psoct_raw_tile
from opticstream_napari.processing.psoct import (
    SpectralReconstructor,
    TileResult,
    Volumes,
    reconstruct_complex_tile,
    reconstruct_spectral_tile,
)
from opticstream_napari.processing.psoct.checks import (
    DEFAULT_MAX_SATURATED_FRACTION,
    FULL_SCALE,
    InputProblem,
    calibration_problem,
    nonfinite_problem,
    saturation_problem,
)
from opticstream_napari.processing.psoct.settings import enface_params, spectral_params
from opticstream_napari.processing.psoct.tile import SurfaceSpec

T = TypeVar("T")

# What each tile_saving_type lets the instrument hand us.
_ACCEPTED: dict[TileSavingType, tuple[RawTileKind, ...]] = {
    TileSavingType.COMPLEX: (RawTileKind.COMPLEX,),
    TileSavingType.SPECTRAL: (RawTileKind.SPECTRAL,),
    TileSavingType.SPECTRAL_12BIT: (RawTileKind.SPECTRAL_12BIT,),
    TileSavingType.COMPLEX_WITH_SPECTRAL: (RawTileKind.COMPLEX, RawTileKind.SPECTRAL),
    TileSavingType.PROCESSED_WITH_SPECTRAL: (RawTileKind.SPECTRAL,),
}


@dataclass(frozen=True, slots=True)
class InputLimits:
    """How much bad data a tile may hold before it is rejected.

    ``full_scale`` None means the format's: 4095 for packed 12-bit, 65535 for 16-bit NIfTI
    (set 4095 when a 12-bit camera writes 16-bit files).
    """

    max_saturated_fraction: float = DEFAULT_MAX_SATURATED_FRACTION
    full_scale: int | None = None


@dataclass(frozen=True, slots=True)
class TileOutputs:
    """What one tile produced. ``result`` shares its volumes with the processor's buffers,
    so it is valid until the processor's next tile."""

    paths: list[Path]
    result: TileResult


@dataclass
class TileProcessor:
    """Reconstructs the tiles of one project, reusing what does not change between tiles."""

    config: PSOCTScanConfig
    workers: int | None = None
    limits: InputLimits = InputLimits()
    _reconstructors: dict[int, SpectralReconstructor] = field(default_factory=dict, init=False, repr=False)
    _buffers: dict[tuple[int, ...], Volumes] = field(default_factory=dict, init=False, repr=False)

    def process(self, path: str | os.PathLike[str], mosaic: int, image: int) -> TileOutputs:
        """Read, check, reconstruct and write tile ``image`` of ``mosaic`` from ``path``."""
        path = Path(path)
        kind = _tile_kind(path, self.config.acquisition.tile_saving_type)
        geometry = self._geometry(mosaic)
        is_complex = kind is RawTileKind.COMPLEX
        result = self._complex(path, geometry) if is_complex else self._spectral(path, geometry, kind)
        return TileOutputs(write_tile_outputs(result, self.config, mosaic, image), result)

    def _geometry(self, mosaic: int) -> TileGeometry:
        acq = self.config.acquisition
        bucket = mosaic_role(mosaic, self.config.mosaics_per_slice).bucket
        length = acq.spectral_length
        return TileGeometry(acq.tile_size_x(bucket), acq.tile_size_y, length,
                            full_depth(length, self.config.processing.autocorr_cut))

    def _spectral(self, path: Path, geometry: TileGeometry, kind: RawTileKind) -> TileResult:
        tile = _guarded(path, lambda: read_spectral_tile(path, geometry))
        rec = self._reconstructor(geometry.alines)
        full_scale = self.limits.full_scale or FULL_SCALE[12 if kind is RawTileKind.SPECTRAL_12BIT else 16]
        result = reconstruct_spectral_tile(
            tile.stored, rec, enface_params(self.config), self._surface(geometry), self.workers,
            self._buffer((geometry.blines, rec.alines, rec.depth)), stored_order=True, full_scale=full_scale,
        )
        problem = saturation_problem(result.saturated, geometry.blines * geometry.alines * geometry.spectral_length,
                                     full_scale, self.limits.max_saturated_fraction)
        _raise(path, problem)
        return result

    def _complex(self, path: Path, geometry: TileGeometry) -> TileResult:
        tile = _guarded(path, lambda: read_complex_tile(path, geometry))
        _raise(path, nonfinite_problem(tile.j1, tile.j2))
        depth = self.config.processing.depth or geometry.depth
        j1 = tile.j1.transpose(1, 0, 2)[..., :depth]
        j2 = tile.j2.transpose(1, 0, 2)[..., :depth]
        return reconstruct_complex_tile(j1, j2, spectral_params(self.config), enface_params(self.config),
                                        self._surface(geometry))

    def _reconstructor(self, alines: int) -> SpectralReconstructor:
        """One per tile width (normal and tilted mosaics differ), built on first use."""
        if alines not in self._reconstructors:
            proc = self.config.processing
            length = self.config.acquisition.spectral_length
            base = Path(self.config.project_base_path)
            cal_path = proc.calibration_file or base / CALIBRATION_FILE
            calibration = read_calibration(cal_path, length)
            _raise(cal_path, calibration_problem(calibration))
            dispersion = None
            if proc.disp_comp_file is not None:
                disp_path = Path(proc.disp_comp_file)
                dispersion = _guarded(disp_path, lambda: read_dispersion(disp_path, length))
            self._reconstructors[alines] = SpectralReconstructor(
                calibration, length, alines, spectral_params(self.config), dispersion
            )
        return self._reconstructors[alines]

    def _buffer(self, shape: tuple[int, int, int]) -> Volumes:
        """Volume buffers per shape, reused: first-touch page faults cost more than the FFTs."""
        if shape not in self._buffers:
            self._buffers[shape] = Volumes(*(np.full(shape, 0.0, dtype=np.float32) for _ in range(3)))
        return self._buffers[shape]

    def _surface(self, geometry: TileGeometry) -> SurfaceSpec:
        """``processing.surface_spec``: a method name, an integer depth, or a NIfTI map (X × Y)."""
        spec = self.config.processing.surface_spec
        if spec.lstrip("-").isdigit():
            return int(spec)
        if not spec.endswith((".nii", ".nii.gz")):
            return spec
        path = Path(spec) if Path(spec).is_absolute() else Path(self.config.project_base_path) / spec
        surface, _ = _guarded(path, lambda: read_enface_nifti(path))
        expected = (geometry.blines, geometry.alines)
        if surface.shape != expected:
            raise RawTileError(path, "surface map shape (y, x)", expected, surface.shape)
        return np.rint(surface).astype(np.int32)


def reconstruct_tile_file(
    path: str | os.PathLike[str],
    config: PSOCTScanConfig,
    mosaic: int,
    image: int,
    *,
    workers: int | None = None,
    limits: InputLimits = InputLimits(),
) -> list[Path]:
    """Reconstruct one raw tile file and write its outputs; returns the paths written.

    For many tiles keep a :class:`TileProcessor` instead: it reads the calibration once and
    reuses its buffers.
    """
    return TileProcessor(config, workers, limits).process(path, mosaic, image).paths


def _tile_kind(path: Path, saving: TileSavingType) -> RawTileKind:
    """The file's format from its name, checked against what the config says the rig writes."""
    if path.suffix.lower() == ".raw":
        kind = RawTileKind.SPECTRAL_12BIT
    else:
        try:
            kind = parse_psoct_raw_tile(path.name).kind
        except NameParseError:
            kind = RawTileKind.COMPLEX
        if kind is RawTileKind.PROCESSED:
            kind = RawTileKind.COMPLEX
    accepted = _ACCEPTED[saving]
    if kind not in accepted:
        raise RawTileError(path, f"tile format (tile_saving_type {saving.value})",
                           " or ".join(k.value for k in accepted), kind.value)
    return kind


def _raise(path: Path, problem: InputProblem | None) -> None:
    if problem is not None:
        raise RawTileError(path, problem.what, problem.expected, problem.found)


def _guarded(path: Path, action: Callable[[], T]) -> T:
    """Run a read of ``path``; an OS error becomes a RawTileError that names the file."""
    try:
        return action()
    except RawTileError:
        raise
    except FileNotFoundError:
        raise RawTileError(path, "file", "an existing file", "no such file") from None
    except OSError as error:
        raise RawTileError(path, "file", "a readable file", f"unreadable ({error.strerror or error})") from None
