"""The volume step of a PS-OCT mosaic, run on the executor once its en-face mosaics are final.

Focus plane (spec 4.9): one per config bucket, ``focus-<bucket>.nii`` in the project folder. The
first mosaic of a bucket to reach this step fits it from its tiles' surface maps at the positions
of its en-face fuse, using only the tiles whose mean AIP reaches the bucket's focus threshold;
every later mosaic of the bucket reuses it. When it cannot be fitted (no AIP or surface maps, too
few bright overlapping tiles), the volumes are cropped with a flat plane and nothing is saved, so
a later mosaic tries again.

Volumes: each configured modality (dBI, R3D, O3D) is cropped per tile from plane +
``crop_focus_plane_offset`` for ``crop_focus_plane_depth`` samples, blended in 3D at the en-face
positions (O3D as the weighted circular mean of an angle), masked with the AIP mask, and written
as an OME-Zarr pyramid ``(z, y, x)`` in µm. The pyramid is produced by write units (a shard, or a
few chunks), each in depth slabs, reading from each tile only the samples the slab needs, so
memory is a few units plus their slabs of tile parts whatever the mosaic's size. Units are
written in parallel, one per core of the task's share (``threads``, from the executor), as far as
half the available memory holds their working sets
(a 1024² × 500 float32 shard is 2 GB: on a 24 GB host, one at a time). Everything is written
atomically from the tiles' files alone: re-running gives the same bytes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from opticstream_napari import naming
from opticstream_napari.config import PSOCTScanConfig
from opticstream_napari.engine.pipelines.psoct_mosaic import (
    Positions,
    TileMaps,
    mosaic_geometry,
    mosaic_tiles,
    overlap_fraction,
    pixel_size_um,
    reduction_for,
    stitched_folder,
)
from opticstream_napari.engine.pipelines.psoct_tile import tile_output_path
from opticstream_napari.identity import PSOCTMosaicId
from opticstream_napari.io.focus_qc import write_focus_qc
from opticstream_napari.io.nifti import load_focus_plane, read_enface_nifti, save_focus_plane
from opticstream_napari.io.ome_zarr import write_pyramid
from opticstream_napari.io.preview import ORIENTATION_WINDOW
from opticstream_napari.io.psoct_outputs import TileVolume
from opticstream_napari.layout import mosaic_role
from opticstream_napari.processing.stitch import (
    BlendMode,
    MosaicLayout,
    blend_mode_for,
    blend_region,
    fit_focus_plane,
    focus_crop,
    is_masked,
    tiles_above_signal,
)

log = logging.getLogger(__name__)

_SLAB_BYTES = 256 << 20  # tile parts read at once for one depth slab of a write unit
_FOCUS_MAPS = ("aip", "surf")


def stitches_volumes(config: PSOCTScanConfig) -> bool:
    """Whether mosaics get volumes: asked for, with modalities, and per-tile volumes kept."""
    return config.stitch_3d_volumes and bool(config.volume_modalities) and config.processing.save_volumes


def focus_plane_path(config: PSOCTScanConfig, bucket: str) -> Path:
    return config.project_base_path / naming.focus_plane_name(bucket)


def fused_positions(config: PSOCTScanConfig, mosaic: PSOCTMosaicId) -> Positions:
    """The tile positions the final en-face fuse used (``stitched/mosaic_MMM_tile_coords.yaml``)."""
    path = stitched_folder(config, mosaic.slice) / naming.mosaic_tile_coords_name(mosaic.mosaic)
    if not path.is_file():
        raise FileNotFoundError(f"{mosaic}: no tile positions at {path}; the en-face mosaics come first")
    coords = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {int(t["tile"]): (float(t["y"]), float(t["x"])) for t in coords["tiles"]}


def focus_qc_folder(config: PSOCTScanConfig, slice_id: int) -> Path:
    """``slice-SS/focus_finding/``: the record of a focus fit made on that slice."""
    return config.project_base_path / naming.slice_folder_name(slice_id) / naming.FOCUS_FOLDER


def fit_mosaic_focus(config: PSOCTScanConfig, mosaic: PSOCTMosaicId, layout: MosaicLayout) -> np.ndarray:
    """Fit the bucket's plane on the mosaic's bright tiles and record the fit in the slice's
    ``focus_finding/``; ValueError when it cannot be fitted."""
    missing = set(_FOCUS_MAPS) - {m.value for m in config.enface_modalities}
    if missing:
        raise ValueError(f"the focus fit needs the {sorted(missing)} en-face maps, which are not computed")
    maps = TileMaps(config, mosaic)
    surfaces, means = {}, {}
    for tile in layout.offsets:
        aip, surface = maps(tile, "aip"), maps(tile, "surf")
        if aip is not None and surface is not None and np.isfinite(aip).any():
            surfaces[tile], means[tile] = surface, float(np.nanmean(aip))
    bucket = mosaic_role(mosaic.mosaic, config.mosaics_per_slice).bucket
    threshold = config.focus_threshold(bucket)
    fit = fit_focus_plane({t: surfaces[t] for t in tiles_above_signal(means, threshold)}, layout.offsets)
    write_focus_qc(focus_qc_folder(config, mosaic.slice), bucket, fit, means, threshold, mosaic=mosaic.mosaic,
                   pixel_size_um=pixel_size_um(config))
    return fit.plane()


def focus_plane(config: PSOCTScanConfig, mosaic: PSOCTMosaicId, layout: MosaicLayout) -> tuple[np.ndarray, str]:
    """The bucket's plane and where it came from: ``stored``, ``fitted`` (and now saved) or ``flat``."""
    bucket = mosaic_role(mosaic.mosaic, config.mosaics_per_slice).bucket
    if focus_plane_path(config, bucket).is_file():
        plane = load_focus_plane(config.project_base_path, bucket)
        if plane.shape != layout.tile_shape:
            raise ValueError(f"the focus plane {focus_plane_path(config, bucket)} is {plane.shape}, "
                             f"the tiles of {mosaic} are {layout.tile_shape} (y, x)")
        return plane, "stored"
    try:
        plane = fit_mosaic_focus(config, mosaic, layout)
    except ValueError as error:
        log.warning("%s: no focus plane for '%s' (%s); its volumes are cropped flat", mosaic, bucket, error)
        return np.zeros(layout.tile_shape, np.float32), "flat"
    save_focus_plane(config.project_base_path, bucket, plane, pixel_size_um(config))
    return plane, "fitted"


@dataclass(frozen=True, slots=True)
class _Blended:
    """The volume mosaic as a sliceable array: a region is blended when the writer asks for it."""

    shape: tuple[int, ...]
    produce: Callable[[tuple[slice, ...]], np.ndarray]

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32)

    def __getitem__(self, region: tuple[slice, ...]) -> np.ndarray:
        return self.produce(region)


class _CroppedTiles:
    """``read(tile, (z, y, x) part)``: the part of a tile's volume flattened along the focus plane."""

    def __init__(self, paths: dict[Hashable, Path], plane: np.ndarray, offset: int) -> None:
        self._paths = paths
        self._volumes: dict[Hashable, TileVolume] = {}  # headers only: a tile is read part by part
        self._start = np.floor(plane).astype(np.int64) + offset
        self._plane = plane
        self._offset = offset

    def __call__(self, tile: Hashable, part: tuple[slice, ...]) -> np.ndarray | None:
        if tile not in self._volumes:
            path = self._paths.get(tile)
            if path is None or not path.exists():
                return None
            self._volumes[tile] = TileVolume(path)
        volume = self._volumes[tile]
        depth, rows, cols = part
        start = self._start[rows, cols]
        lo = max(int(start.min()) + depth.start, 0)
        hi = min(int(start.max()) + depth.stop, volume.shape[0])
        if lo >= hi:  # the slab lies below the end of the tile everywhere
            return np.full((depth.stop - depth.start, *start.shape), np.nan, np.float32)
        samples = volume.read(slice(lo, hi), rows, cols)
        return focus_crop(samples, self._plane[rows, cols], self._offset + depth.start - lo, depth.stop - depth.start)


def _produce(layout: MosaicLayout, read: _CroppedTiles, mode: BlendMode,
             mask: np.ndarray | None) -> Callable[[tuple[slice, ...]], np.ndarray]:
    def produce(region: tuple[slice, ...]) -> np.ndarray:
        depth, rows, cols = region
        out = np.empty((depth.stop - depth.start, rows.stop - rows.start, cols.stop - cols.start), np.float32)
        step = max(1, _SLAB_BYTES // (2 * 4 * out.shape[1] * out.shape[2]))  # tiles cover a pixel ~1.5× on average
        for z0 in range(depth.start, depth.stop, step):
            z1 = min(z0 + step, depth.stop)
            out[z0 - depth.start : z1 - depth.start] = blend_region(layout, (slice(z0, z1), rows, cols), read, mode)
        if mask is not None:
            out[:, ~mask[rows, cols]] = np.nan
        return out

    return produce


def _tissue(config: PSOCTScanConfig, mosaic: PSOCTMosaicId, plane_shape: tuple[int, ...]) -> np.ndarray | None:
    """The AIP mask as booleans when it is applied and exists."""
    path = stitched_folder(config, mosaic.slice) / naming.mosaic_mask_name(mosaic.mosaic)
    if not config.apply_mask or not path.is_file():
        return None
    mask = read_enface_nifti(path)[0] > 0
    if mask.shape != plane_shape:
        raise ValueError(f"{mosaic}: the mask {path} is {mask.shape}, the mosaic {plane_shape}")
    return mask


def stitch_volumes(
    config_data: dict[str, Any], mosaic_data: dict[str, Any], threads: int | None = None
) -> dict[str, Any]:
    """Executor entry point: the focus plane (fitted or reused) and every volume mosaic, written
    on at most ``threads`` cores (the task's share of the executor; None: every core).

    Returns ``{"outputs": {modality: zarr path}, "focus": {"bucket", "source", "path"}}``.
    """
    config = PSOCTScanConfig.model_validate(config_data)
    mosaic = PSOCTMosaicId.from_dict(mosaic_data)
    _, shape = mosaic_geometry(config, mosaic.mosaic)
    layout = MosaicLayout.from_positions(fused_positions(config, mosaic), shape, overlap_fraction(config),
                                         depth=config.crop_focus_plane_depth)
    plane, source = focus_plane(config, mosaic, layout)
    mask = _tissue(config, mosaic, layout.shape[1:])
    size_x, size_y, size_z = config.acquisition.scan_resolution_3d_um
    folder = stitched_folder(config, mosaic.slice)
    outputs = {}
    for modality in (m.value for m in config.volume_modalities):
        paths = {t.tile: tile_output_path(config, t, modality) for t in mosaic_tiles(config, mosaic)}
        read = _CroppedTiles(paths, plane, config.crop_focus_plane_offset)
        mode = blend_mode_for(modality)
        produce = _produce(layout, read, mode, mask if is_masked(modality) else None)
        path = write_pyramid(
            folder / naming.mosaic_zarr_name(mosaic.mosaic, modality), _Blended(layout.shape, produce),
            (size_z, size_y, size_x), zarr_config=config.zarr_config, overwrite=True, workers=None, cores=threads,
            reduction=reduction_for(modality), window=ORIENTATION_WINDOW if mode is BlendMode.CIRCULAR_180 else None,
        )
        outputs[modality] = str(path)
    bucket = mosaic_role(mosaic.mosaic, config.mosaics_per_slice).bucket
    stored = focus_plane_path(config, bucket)
    return {"outputs": outputs,
            "focus": {"bucket": bucket, "source": source, "path": str(stored) if source != "flat" else None}}
