"""Per-tile PS-OCT outputs: en-face maps as NIfTI, volumes as NIfTI or OME-Zarr, all-or-nothing.

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

  With ``processing.volume_format = "zarr"`` a volume is a one-level OME-Zarr 0.5 store
  ``(z, y, x)`` in µm with the config's chunks, shards and codec; a quantised one keeps its step
  and offset as ``scale_factor``/``add_offset`` in our block of the group attributes.

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
from opticstream_napari.config.zarr import ZarrConfig
from opticstream_napari.io.atomic import fsync_dir, fsync_tree, remove_path, temporary_sibling
from opticstream_napari.io.nifti import write_enface_nifti
from opticstream_napari.io.ome_zarr import create_pyramid, is_complete, open_pyramid, writer_block
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
    paths = {m.value: folder / processed_tile_name(mosaic, image, m.value) for m in config.enface_modalities}
    if config.processing.save_volumes:
        zarr = config.processing.volume_format == "zarr"
        for m in config.volume_modalities:
            paths[m.value] = folder / processed_tile_name(mosaic, image, m.value, zarr=zarr)
    return paths


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
                if proc.volume_format == "zarr":
                    write_volume_zarr(tmp, volume, (size_x, size_y, size_z), quantisation, depth=proc.depth,
                                      zarr_config=config.zarr_config)
                else:
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
    kept, dtype = _stored_depth_and_type(volume, quantisation, depth)
    ny, nx = volume.shape[:2]
    header = _volume_header((nx, ny, kept), dtype, [v / _UM_PER_MM for v in voxel_um], quantisation)
    chunk = np.empty((min(_Z_CHUNK, kept), ny, nx), dtype=dtype)
    slope, inter, top = _scaling(quantisation)
    path = Path(path)
    with open(path, "wb") as handle:
        handle.write(header)
        for z0 in range(0, kept, _Z_CHUNK):
            z1 = min(z0 + _Z_CHUNK, kept)
            _disk_order(volume, z0, z1, slope, inter, top, quantisation is not None, chunk)
            chunk[: z1 - z0].tofile(handle)
    return path


def write_volume_zarr(
    path: str | os.PathLike[str],
    volume: npt.NDArray[np.float32],
    voxel_um: Sequence[float],
    quantisation: Quantisation | None = None,
    *,
    depth: int | None = None,
    zarr_config: ZarrConfig | None = None,
) -> Path:
    """Write a ``(y, x, z)`` volume as a one-level OME-Zarr store ``(z, y, x)`` in µm.

    Not atomic by itself (:func:`write_tile_outputs` writes it to a temporary name). ``depth``
    and ``quantisation`` as for :func:`write_volume_nifti`; the step and offset of a quantised
    volume go to the store's attributes, where :class:`TileVolume` finds them.
    """
    kept, dtype = _stored_depth_and_type(volume, quantisation, depth)
    ny, nx = volume.shape[:2]
    extra = None if quantisation is None else {"scale_factor": quantisation.slope, "add_offset": quantisation.inter}
    layout = (zarr_config or ZarrConfig()).model_copy(update={"levels": 1})
    size_x, size_y, size_z = voxel_um
    pyramid = create_pyramid(path, (kept, ny, nx), dtype, (size_z, size_y, size_x), zarr_config=layout,
                             writer_extra=extra, overwrite=True)
    slope, inter, top = _scaling(quantisation)
    step = _Z_CHUNK if layout.shard is None else max(_Z_CHUNK, layout.shard)
    chunk = np.empty((min(step, kept), ny, nx), dtype=dtype)
    for z0 in range(0, kept, step):
        z1 = min(z0 + step, kept)
        _disk_order(volume, z0, z1, slope, inter, top, quantisation is not None, chunk)
        pyramid.write_region((slice(z0, z1), slice(None), slice(None)), chunk[: z1 - z0])
    pyramid.mark_complete()
    return Path(path)


def read_volume_nifti(path: str | os.PathLike[str]) -> tuple[npt.NDArray[np.float32], tuple[float, float, float]]:
    """The ``(y, x, z)`` volume in physical units and its ``(x, y, z)`` voxel size in µm."""
    image = nib.load(str(path))
    data = np.asarray(image.dataobj, dtype=np.float32)
    if data.ndim != 3:
        raise ValueError(f"{path} is not a volume (X × Y × Z): shape {data.shape}")
    zooms = tuple(float(z) * _UM_PER_MM for z in image.header.get_zooms()[:3])
    return data.transpose(1, 0, 2), zooms


class TileVolume:
    """A per-tile volume (NIfTI file or OME-Zarr store) read in parts, ``(z, y, x)`` float32 in
    physical units.

    NIfTI stores X fastest and Z slowest, so a depth range of a tile is one contiguous stretch
    of the file: mosaics are stitched slab by slab from a memory map, without loading whole
    tiles; a zarr store is read by the chunks a part touches. Quantised samples are scaled in
    float32 (``stored · slope + inter``).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        if Path(path).is_dir():
            self._open_zarr(Path(path))
            return
        stored = nib.load(str(path)).dataobj  # an ArrayProxy: where and how the samples are stored
        if len(stored.shape) != 3:
            raise ValueError(f"{path} is not a volume (X × Y × Z): shape {stored.shape}")
        self._scale = (np.float32(stored.slope), np.float32(stored.inter))
        samples = np.memmap(path, dtype=stored.dtype, mode="r", offset=int(stored.offset),
                            shape=stored.shape, order="F")
        self._read = lambda z, y, x: samples[x, y, z].transpose(2, 1, 0)
        x, y, z = stored.shape
        self.shape = (int(z), int(y), int(x))

    def _open_zarr(self, path: Path) -> None:
        if not is_complete(path):
            raise ValueError(f"{path} is not a complete OME-Zarr volume")
        pyramid = open_pyramid(path)
        if len(pyramid.shape) != 3:
            raise ValueError(f"{path} is not a volume (z, y, x): shape {pyramid.shape}")
        block = writer_block(path)
        self._scale = (np.float32(block.get("scale_factor", 1.0)), np.float32(block.get("add_offset", 0.0)))
        self._read = lambda z, y, x: pyramid.read(0, (z, y, x))
        self.shape = pyramid.shape

    def read(self, z: slice, y: slice, x: slice) -> npt.NDArray[np.float32]:
        block = self._read(z, y, x).astype(np.float32, order="C")
        slope, inter = self._scale
        if slope != 1 or inter != 0:
            block *= slope
            block += inter
        return block


def _stored_depth_and_type(
    volume: npt.NDArray[np.float32], quantisation: Quantisation | None, depth: int | None
) -> tuple[int, type[np.generic]]:
    """How many depth samples of a ``(y, x, z)`` volume are written, and as which type."""
    if volume.ndim != 3:
        raise ValueError(f"a volume is 3D (y, x, z), found shape {volume.shape}")
    kept = volume.shape[2] if depth is None else min(depth, volume.shape[2])
    return kept, np.float32 if quantisation is None else quantisation.dtype


def _scaling(quantisation: Quantisation | None) -> tuple[np.float32, np.float32, np.float32]:
    """Step, offset and top code of a volume's stored type, as :func:`_disk_order` takes them."""
    if quantisation is None:
        return np.float32(1.0), np.float32(0.0), np.float32(0.0)
    return np.float32(quantisation.slope), np.float32(quantisation.inter), np.float32(quantisation.top)


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
    """Yield one temporary sibling per final path (a file or a zarr folder); on success fsync
    and rename them all.

    An earlier output that is a folder (a re-run) is moved aside before the rename, which cannot
    replace a non-empty folder. On any error every temporary, and every final already renamed by
    this call, is removed, so a reader never sees some outputs of the set without the others.
    """
    staged = [temporary_sibling(final) for final in finals]
    renamed: list[Path] = []
    aside: list[Path] = []
    try:
        yield staged
        for tmp in staged:
            fsync_tree(tmp)
        for tmp, final in zip(staged, finals, strict=True):
            if final.is_dir():
                aside.append(temporary_sibling(final))
                os.replace(final, aside[-1])
            os.replace(tmp, final)
            renamed.append(final)
        for folder in {final.parent for final in finals}:
            fsync_dir(folder)
    except BaseException:
        for path in [*staged, *renamed]:
            remove_path(path)
        raise
    finally:
        for path in aside:
            remove_path(path)
