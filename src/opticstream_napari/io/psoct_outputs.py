"""Per-tile PS-OCT outputs: en-face maps and volumes as NIfTI, written all-or-nothing.

Names come from :func:`naming.processed_tile_name` in ``<project>/slice-SS/processed/``. In
memory a tile is ``(y, x[, z])``; on disk NIfTI is ``X × Y[ × Z]`` in millimetres:

- en-face maps (``config.enface_modalities``): float32, ``X × Y × 1`` with z = the slice
  thickness when ``save_enface_2d_as_3d`` (else ``X × Y``), through :mod:`io.nifti`;
- volumes (``config.volume_modalities``, when ``save_volumes``): ``X × Y × Z`` cropped to
  ``processing.depth``, typed by ``processing.volume_dtype``. Quantised types carry their
  step and offset in ``scl_slope``/``scl_inter``, so NIfTI readers return physical values:

  ====  ====================================  ====================================
        uint16                                uint8
  ====  ====================================  ====================================
  dBI   0 dB + k · 1/256 dB (0 … 255.996 dB)  20 dB + k · 0.5 dB (20 … 147.5 dB)
  R3D   0° + k · 90/65535° (0 … 90°)          0° + k · 90/255° (0 … 90°)
  O3D   −90° + k · 180/65535° (−90 … 90°)     −90° + k · 180/255° (−90 … 90°)
  ====  ====================================  ====================================

  Values are rounded to the nearest step and clipped to the range (so dBI below the first
  step, e.g. empty air, reads back as the range's floor). Full-depth float32 volumes move
  1.5× the raw tile to disk; uint8 moves 0.37× (see docs/performance.md).

Every file of a tile is first written under a hidden temporary sibling (``io.atomic``) and
renamed into place only when all of them are complete; if anything fails, the temporaries
are removed and no file of the tile appears.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numba as nb
import numpy as np
import numpy.typing as npt

from opticstream_napari.config import PSOCTScanConfig
from opticstream_napari.io.atomic import temporary_sibling
from opticstream_napari.io.nifti import write_enface_nifti
from opticstream_napari.io.output import ensure_output_dir
from opticstream_napari.io.psoct_raw import NIFTI_HEADER_BYTES
from opticstream_napari.layout import slice_of_mosaic
from opticstream_napari.naming import PROCESSED_FOLDER, processed_tile_name, slice_folder_name
from opticstream_napari.processing.psoct import TileResult

_UM_PER_MM = 1000.0
_Z_CHUNK = 64


@dataclass(frozen=True, slots=True)
class Quantisation:
    """``stored = round((value - inter) / slope)`` clipped to the type; ``value = stored·slope + inter``."""

    dtype: type[np.unsignedinteger]
    slope: float
    inter: float

    @property
    def top(self) -> int:
        return int(np.iinfo(self.dtype).max)


QUANTISATION: dict[str, dict[str, Quantisation]] = {
    "uint16": {
        "dBI": Quantisation(np.uint16, 1 / 256, 0.0),
        "R3D": Quantisation(np.uint16, 90 / 65535, 0.0),
        "O3D": Quantisation(np.uint16, 180 / 65535, -90.0),
    },
    "uint8": {
        "dBI": Quantisation(np.uint8, 0.5, 20.0),
        "R3D": Quantisation(np.uint8, 90 / 255, 0.0),
        "O3D": Quantisation(np.uint8, 180 / 255, -90.0),
    },
}


def processed_folder(config: PSOCTScanConfig, mosaic: int) -> Path:
    """``<project>/slice-SS/processed`` of the slice the mosaic belongs to."""
    slice_id = slice_of_mosaic(mosaic, config.mosaics_per_slice)
    return Path(config.project_base_path) / slice_folder_name(slice_id) / PROCESSED_FOLDER


def tile_output_paths(config: PSOCTScanConfig, mosaic: int, image: int) -> dict[str, Path]:
    """Every per-tile output the config asks for, by modality name (en-face first)."""
    folder = processed_folder(config, mosaic)
    names = [m.value for m in config.enface_modalities]
    if config.processing.save_volumes:
        names += [m.value for m in config.volume_modalities]
    return {name: folder / processed_tile_name(mosaic, image, name) for name in names}


def write_tile_outputs(result: TileResult, config: PSOCTScanConfig, mosaic: int, image: int) -> list[Path]:
    """Write the configured en-face maps and volumes of one tile; all appear or none does."""
    acq, proc = config.acquisition, config.processing
    size_x, size_y, size_z = acq.scan_resolution_3d_um
    paths = tile_output_paths(config, mosaic, image)
    ensure_output_dir(processed_folder(config, mosaic))
    with _all_or_nothing(list(paths.values())) as staged:
        for name, tmp in zip(paths, staged, strict=True):
            if name in result.enface:
                write_enface_nifti(tmp, result.enface[name], (size_y, size_x), as_3d=proc.save_enface_2d_as_3d,
                                   slice_thickness_um=acq.slice_thickness_um)
            else:
                volume = getattr(result.volumes, name.lower())
                quantisation = QUANTISATION[proc.volume_dtype][name] if proc.volume_dtype != "float32" else None
                write_volume_nifti(tmp, volume, (size_x, size_y, size_z), quantisation, depth=proc.depth)
    return list(paths.values())


def write_volume_nifti(
    path: str | os.PathLike[str],
    volume: npt.NDArray[np.float32],
    voxel_um: Sequence[float],
    quantisation: Quantisation | None = None,
    *,
    depth: int | None = None,
) -> Path:
    """Write a ``(y, x, z)`` volume as NIfTI ``X × Y × Z`` (zooms in mm), streaming z-chunks.

    Not atomic by itself (:func:`write_tile_outputs` writes it to a temporary name). ``depth``
    keeps the first ``depth`` samples; ``quantisation`` stores integers with scl_slope/scl_inter.
    """
    if volume.ndim != 3:
        raise ValueError(f"a volume is 3D (y, x, z), found shape {volume.shape}")
    kept = volume.shape[2] if depth is None else min(depth, volume.shape[2])
    ny, nx = volume.shape[:2]
    dtype = np.float32 if quantisation is None else quantisation.dtype
    header = _volume_header((nx, ny, kept), dtype, [v / _UM_PER_MM for v in voxel_um], quantisation)
    chunk = np.empty((min(_Z_CHUNK, kept), ny, nx), dtype=dtype)
    if quantisation is None:
        slope, inter, top = np.float32(1.0), np.float32(0.0), np.float32(0.0)
    else:
        slope, inter, top = np.float32(quantisation.slope), np.float32(quantisation.inter), np.float32(quantisation.top)
    path = Path(path)
    with open(path, "wb") as handle:
        handle.write(header)
        for z0 in range(0, kept, _Z_CHUNK):
            z1 = min(z0 + _Z_CHUNK, kept)
            _disk_order(volume, z0, z1, slope, inter, top, quantisation is not None, chunk)
            chunk[: z1 - z0].tofile(handle)
    return path


def read_volume_nifti(path: str | os.PathLike[str]) -> tuple[npt.NDArray[np.float32], tuple[float, float, float]]:
    """The ``(y, x, z)`` volume in physical units and its ``(x, y, z)`` voxel size in µm."""
    image = nib.load(str(path))
    data = np.asarray(image.dataobj, dtype=np.float32)
    if data.ndim != 3:
        raise ValueError(f"{path} is not a volume (X × Y × Z): shape {data.shape}")
    zooms = tuple(float(z) * _UM_PER_MM for z in image.header.get_zooms()[:3])
    return data.transpose(1, 0, 2), zooms


class TileVolume:
    """A per-tile volume file read in parts, ``(z, y, x)`` float32 in physical units.

    NIfTI stores X fastest and Z slowest, so a depth range of a tile is one contiguous stretch
    of the file: mosaics are stitched slab by slab from a memory map, without loading whole
    tiles. Quantised samples are scaled in float32 (``stored · slope + inter``).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        stored = nib.load(str(path)).dataobj  # an ArrayProxy: where and how the samples are stored
        if len(stored.shape) != 3:
            raise ValueError(f"{path} is not a volume (X × Y × Z): shape {stored.shape}")
        self._scale = (np.float32(stored.slope), np.float32(stored.inter))
        self._samples = np.memmap(path, dtype=stored.dtype, mode="r", offset=int(stored.offset),
                                  shape=stored.shape, order="F")
        x, y, z = stored.shape
        self.shape = (int(z), int(y), int(x))

    def read(self, z: slice, y: slice, x: slice) -> npt.NDArray[np.float32]:
        block = self._samples[x, y, z].transpose(2, 1, 0).astype(np.float32, order="C")
        slope, inter = self._scale
        if slope != 1 or inter != 0:
            block *= slope
            block += inter
        return block


def _volume_header(
    shape: tuple[int, int, int], dtype: type, zooms_mm: list[float], quantisation: Quantisation | None
) -> bytes:
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(dtype)
    header.set_zooms(zooms_mm)
    header.set_xyzt_units(xyz="mm")
    affine = np.diag([*zooms_mm, 1.0])
    header.set_qform(affine, code=1)
    header.set_sform(affine, code=1)
    if quantisation is not None:
        header.set_slope_inter(quantisation.slope, quantisation.inter)
    header.set_data_offset(NIFTI_HEADER_BYTES)
    block = header.binaryblock
    return block + b"\x00" * (NIFTI_HEADER_BYTES - len(block))


@nb.njit(nogil=True, cache=True, fastmath=True)
def _disk_order(volume, z0, z1, slope, inter, top, quantise, out):  # pragma: no cover - numba
    """out[z - z0, y, x] = volume[y, x, z] for z in [z0, z1), quantised when asked.

    NIfTI stores X fastest, then Y, then Z: the transpose of the in-memory (y, x, z) order.
    """
    ny, nx, _ = volume.shape
    scale = np.float32(1.0) / slope
    zero = np.float32(0.0)
    for y in range(ny):
        for x in range(nx):
            source = volume[y, x]
            for z in range(z0, z1):
                value = source[z]
                if quantise:
                    value = np.rint(min(max((value - inter) * scale, zero), top))
                out[z - z0, y, x] = value


@contextmanager
def _all_or_nothing(finals: list[Path]) -> Iterator[list[Path]]:
    """Yield one temporary sibling per final path; on success fsync and rename them all.

    On any error every temporary, and every final already renamed by this call, is removed,
    so a reader never sees some files of the set without the others.
    """
    staged = [temporary_sibling(final) for final in finals]
    renamed: list[Path] = []
    try:
        yield staged
        for tmp in staged:
            _fsync(tmp)
        for tmp, final in zip(staged, finals, strict=True):
            os.replace(tmp, final)
            renamed.append(final)
        for folder in {final.parent for final in finals}:
            _fsync(folder)
    except BaseException:
        for path in [*staged, *renamed]:
            path.unlink(missing_ok=True)
        raise


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
