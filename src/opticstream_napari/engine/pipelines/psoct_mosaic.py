"""The mosaic steps of PS-OCT, run on the executor: live previews as tiles land, and the final fuse.

Live: each completed tile's region of every en-face modality is blended from the tiles done so
far and written into an unsharded OME-Zarr pyramid under ``stitched/live/``, at the positions of
the acquisition's placement template when one exists, else at the nominal stage grid.

Final: tiles are placed once (the stored template; else registration on the AIP tiles, with the
FFT plans every process shares, whose lattice becomes the template of that acquisition label;
else, when the overlap is too narrow to register, the stage grid), every modality is fused in
one pass, masked with the AIP mask, and
written as OME-Zarr, NIfTI and a JPEG preview, with the mask and the tile positions used.
Everything is written atomically and from the tiles' files alone, so re-running a step gives
the same bytes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from opticstream_napari import naming
from opticstream_napari.config import PSOCTScanConfig
from opticstream_napari.config.zarr import ZarrConfig
from opticstream_napari.engine.pipelines.psoct_tile import tile_output_path
from opticstream_napari.engine.plans import shared_plans, wisdom_path
from opticstream_napari.identity import PSOCTMosaicId, PSOCTTileId
from opticstream_napari.io.atomic import atomic_write_text
from opticstream_napari.io.downsample import Reduction
from opticstream_napari.io.nifti import read_enface_nifti, write_enface_nifti
from opticstream_napari.io.ome_zarr import OmeZarrPyramid, create_pyramid, open_pyramid, write_pyramid
from opticstream_napari.io.placement_template import (
    load_placement_template,
    placement_template_path,
    save_placement_template,
)
from opticstream_napari.io.preview import default_window, write_preview
from opticstream_napari.layout import Grid, mosaic_role, tiles_of_batch
from opticstream_napari.processing.stitch import (
    BlendMode,
    MosaicLayout,
    TileShapeError,
    blend_mode_for,
    blend_region,
    place_tiles,
    template_from_placement,
)
from opticstream_napari.processing.stitch.mosaic import fuse_enface

log = logging.getLogger(__name__)

Positions = dict[int, tuple[float, float]]


def stitched_folder(config: PSOCTScanConfig, slice_id: int) -> Path:
    return config.project_base_path / naming.slice_folder_name(slice_id) / naming.STITCHED_FOLDER


def live_path(config: PSOCTScanConfig, mosaic: PSOCTMosaicId, modality: str) -> Path:
    return stitched_folder(config, mosaic.slice) / naming.LIVE_FOLDER / naming.mosaic_zarr_name(mosaic.mosaic, modality)


def mosaic_geometry(config: PSOCTScanConfig, mosaic: int) -> tuple[Grid, tuple[int, int]]:
    """The mosaic's grid and its tiles' (y, x) shape in en-face pixels."""
    acq = config.acquisition
    bucket = mosaic_role(mosaic, config.mosaics_per_slice).bucket
    return Grid(acq.grid_size_x(bucket), acq.grid_size_y), (acq.tile_size_y, acq.tile_size_x(bucket))


def overlap_fraction(config: PSOCTScanConfig) -> float:
    return config.acquisition.tile_overlap / 100


def pixel_size_um(config: PSOCTScanConfig) -> tuple[float, float]:
    """En-face pixel size (y, x): the config gives (x, y, z)."""
    x, y, _ = config.acquisition.scan_resolution_3d_um
    return y, x


def reduction_for(modality: str) -> Reduction:
    """Pyramid levels pool orientation (ORI, O3D) as angles, like the blend; the rest as a mean."""
    return Reduction.CIRCULAR_180 if blend_mode_for(modality) is BlendMode.CIRCULAR_180 else Reduction.MEAN


def nominal_positions(config: PSOCTScanConfig, mosaic: int) -> Positions:
    """The stage grid: ``(row, column) × tile × (1 - overlap)``."""
    grid, (h, w) = mosaic_geometry(config, mosaic)
    keep = 1 - overlap_fraction(config)
    return {t: (grid.position(t)[0] * h * keep, grid.position(t)[1] * w * keep) for t in range(1, grid.tile_count + 1)}


def template_positions(config: PSOCTScanConfig, mosaic: int) -> Positions | None:
    """The stored template of the mosaic's acquisition label, checked against its grid; None if none."""
    acquisition = mosaic_role(mosaic, config.mosaics_per_slice).acquisition
    if not placement_template_path(config.project_base_path, acquisition).is_file():
        return None
    grid, shape = mosaic_geometry(config, mosaic)
    template = load_placement_template(config.project_base_path, acquisition, grid=grid, tile_shape=shape)
    return dict(template.positions)


def mosaic_tiles(config: PSOCTScanConfig, mosaic: PSOCTMosaicId) -> list[PSOCTTileId]:
    grid, _ = mosaic_geometry(config, mosaic.mosaic)
    rows = config.acquisition.grid_size_y
    return [
        PSOCTTileId(mosaic.project, mosaic.slice, mosaic.mosaic, batch, tile)
        for batch in range(1, grid.columns + 1)
        for tile in tiles_of_batch(batch, rows)
    ]


class TileMaps:
    """Per-tile en-face maps read from the tile outputs; None for a tile not (yet) there.

    The maps of the modality asked for last are kept, so blending a tile's neighbours reads each
    tile once; asking for another modality drops them, since every modality of a slab's grid
    together is gigabytes (six of 400 tiles of 350 × 350 hold 1.2 GB).
    """

    def __init__(self, config: PSOCTScanConfig, mosaic: PSOCTMosaicId, available: set[int] | None = None) -> None:
        self._paths = {t.tile: t for t in mosaic_tiles(config, mosaic)}
        self._config = config
        self._available = available
        self._modality: str | None = None
        self._cache: dict[int, np.ndarray | None] = {}

    def __call__(self, tile: int, modality: str) -> np.ndarray | None:
        if modality != self._modality:
            self._cache.clear()
            self._modality = modality
        if tile not in self._cache:
            self._cache[tile] = self._read(tile, modality)
        return self._cache[tile]

    def _read(self, tile: int, modality: str) -> np.ndarray | None:
        if self._available is not None and tile not in self._available:
            return None
        path = tile_output_path(self._config, self._paths[tile], modality)
        if not path.is_file():
            return None
        return read_enface_nifti(path)[0].astype(np.float32)


# --------------------------------------------------------------------------- live previews


def _live_pyramid(
    path: Path, layout: MosaicLayout, config: PSOCTScanConfig, modality: str, rebuild: bool
) -> OmeZarrPyramid:
    """Reopen the preview, or (re)create it when asked, missing, unreadable or of another shape."""
    if not rebuild and (path / "zarr.json").is_file():
        try:
            pyramid = open_pyramid(path)
        except (OSError, ValueError, KeyError) as error:
            log.warning("recreating the unreadable live preview %s (%s)", path, error)
        else:
            if pyramid.shape == layout.shape:
                return pyramid
    live_config = ZarrConfig(chunk=config.zarr_config.chunk, shard=None, codec=config.zarr_config.codec,
                             clevel=config.zarr_config.clevel, levels=config.zarr_config.levels)
    return create_pyramid(path, layout.shape, np.float32, pixel_size_um(config), zarr_config=live_config,
                          reduction=reduction_for(modality), overwrite=True)


def write_live_regions(
    config_data: dict[str, Any], mosaic_data: dict[str, Any], tiles: list[int], available: list[int], rebuild: bool
) -> list[tuple[str, tuple[int, int, int, int], str]]:
    """Executor entry point: blend the regions of ``tiles`` from the ``available`` tiles into the
    live previews; returns ``(modality, (y0, y1, x0, x1), path)`` per region written.

    ``rebuild`` recreates the previews first (a restart, or a template that appeared), and the
    regions of every available tile are written.
    """
    config = PSOCTScanConfig.model_validate(config_data)
    mosaic = PSOCTMosaicId.from_dict(mosaic_data)
    _, shape = mosaic_geometry(config, mosaic.mosaic)
    positions = template_positions(config, mosaic.mosaic) or nominal_positions(config, mosaic.mosaic)
    layout = MosaicLayout.from_positions(positions, shape, overlap_fraction(config))
    maps = TileMaps(config, mosaic, set(available))
    todo = sorted(set(available) if rebuild else set(tiles))
    written = []
    for modality in (m.value for m in config.enface_modalities):
        path = live_path(config, mosaic, modality)
        pyramid = _live_pyramid(path, layout, config, modality, rebuild)

        def part(tile: int, where: tuple[slice, ...], modality: str = modality) -> np.ndarray | None:
            data = maps(tile, modality)
            return None if data is None else data[where]

        for tile in todo:
            region = layout.tile_region(tile)
            pyramid.write_region(region, blend_region(layout, region, part, blend_mode_for(modality)))
            rows, cols = region
            written.append((modality, (rows.start, rows.stop, cols.start, cols.stop), str(path)))
    return written


# --------------------------------------------------------------------------- final mosaic


def place_mosaic(config: PSOCTScanConfig, mosaic: PSOCTMosaicId, maps: TileMaps) -> tuple[Positions, str]:
    """Positions and where they came from: ``template``, ``registered`` (template saved) or ``stage``."""
    stored = template_positions(config, mosaic.mosaic)
    if stored is not None:
        return stored, "template"
    grid, shape = mosaic_geometry(config, mosaic.mosaic)
    role = mosaic_role(mosaic.mosaic, config.mosaics_per_slice)
    try:
        with shared_plans(wisdom_path(config.project_base_path), ("registration", grid, shape)):
            placement = place_tiles(lambda tile: maps(tile, "aip"), grid, overlap_fraction(config), tile_shape=shape)
    except TileShapeError:
        raise
    except ValueError as error:  # the overlap is too narrow to register, or no AIP tile exists
        log.info("%s: placing tiles on the stage grid: %s", mosaic, error)
        return nominal_positions(config, mosaic.mosaic), "stage"
    template = template_from_placement(
        placement, role.acquisition, signal_threshold=config.mask_threshold(role.bucket),
        source=f"slice {mosaic.slice}, mosaic {mosaic.mosaic}",
    )
    save_placement_template(config.project_base_path, template)
    return dict(template.positions), "registered"


def finalise_mosaic(config_data: dict[str, Any], mosaic_data: dict[str, Any]) -> dict[str, Any]:
    """Executor entry point: place, fuse every en-face modality, mask, and write all outputs.

    Returns ``{"outputs": {modality: zarr path}, "nifti": {...}, "mask": path, "placement": source}``.
    """
    config = PSOCTScanConfig.model_validate(config_data)
    mosaic = PSOCTMosaicId.from_dict(mosaic_data)
    role = mosaic_role(mosaic.mosaic, config.mosaics_per_slice)
    _, shape = mosaic_geometry(config, mosaic.mosaic)
    maps = TileMaps(config, mosaic)
    positions, source = place_mosaic(config, mosaic, maps)
    modalities = [m.value for m in config.enface_modalities]
    fused = fuse_enface(
        maps, positions, shape, overlap_fraction(config), modalities,
        mask_threshold=config.mask_threshold(role.bucket), mask=config.apply_mask,
    )
    folder = stitched_folder(config, mosaic.slice)
    pixel = pixel_size_um(config)
    nifti_options = {"as_3d": config.processing.save_enface_2d_as_3d,
                     "slice_thickness_um": config.acquisition.slice_thickness_um}
    result: dict[str, Any] = {"outputs": {}, "nifti": {}, "placement": source}
    for modality, values in fused.maps.items():
        zarr = write_pyramid(
            folder / naming.mosaic_zarr_name(mosaic.mosaic, modality), values, pixel,
            zarr_config=config.zarr_config, overwrite=True, window=default_window(values, modality),
            reduction=reduction_for(modality),
        )
        nifti = write_enface_nifti(folder / naming.mosaic_enface_nifti_name(mosaic.mosaic, modality), values,
                                   pixel, **nifti_options)
        write_preview(folder / naming.mosaic_preview_name(mosaic.mosaic, modality), values, modality,
                      value=fused.maps.get("ret"))
        result["outputs"][modality] = str(zarr)
        result["nifti"][modality] = str(nifti)
    if fused.mask is not None:
        mask = write_enface_nifti(folder / naming.mosaic_mask_name(mosaic.mosaic), fused.mask, pixel,
                                  dtype=np.uint8, **nifti_options)
        result["mask"] = str(mask)
    coords = {
        "mosaic": mosaic.mosaic, "acquisition": role.acquisition, "placement": source,
        "tile_shape": list(shape), "pixel_size_um": list(pixel),
        "tiles": [{"tile": t, "y": float(y), "x": float(x), "offset": list(fused.layout.offsets[t])}
                  for t, (y, x) in sorted(positions.items())],
    }
    atomic_write_text(folder / naming.mosaic_tile_coords_name(mosaic.mosaic), yaml.safe_dump(coords, sort_keys=False))
    return result
