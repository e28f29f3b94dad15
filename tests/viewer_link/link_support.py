"""Helpers of the mediator tests (imported by name): pyramids and LSM strip MIPs where the engine writes
them, and its messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from opticstream_napari import naming
from opticstream_napari.config import LSMScanConfig, PSOCTScanConfig, ZarrConfig
from opticstream_napari.engine.messages import RegionWritten
from opticstream_napari.engine.pipelines.psoct_mosaic import live_path
from opticstream_napari.identity import LSMStripId, PSOCTMosaicId
from opticstream_napari.io.ome_zarr import OmeZarrPyramid, create_pyramid

SHAPE = (64, 96)
PIXEL = (10.0, 10.0)
DEPTH = 24
VOXEL = (2.5, *PIXEL)  # (z, y, x) µm
MIP_SHAPE = (40, 30)  # an LSM strip MIP (camera columns, frames): halves of 20 rows


def pyramid(path: Path) -> OmeZarrPyramid:
    """An empty float32 pyramid of SHAPE at PIXEL µm."""
    return create_pyramid(path, SHAPE, np.float32, PIXEL, zarr_config=ZarrConfig(chunk=16, shard=None))


def volume(path: Path) -> OmeZarrPyramid:
    """A finished float32 (z, y, x) pyramid of DEPTH × SHAPE at VOXEL µm, 60 everywhere."""
    store = create_pyramid(path, (DEPTH, *SHAPE), np.float32, VOXEL, zarr_config=ZarrConfig(chunk=16, shard=None))
    store.write_region((slice(0, DEPTH), slice(0, SHAPE[0]), slice(0, SHAPE[1])),
                       np.full((DEPTH, *SHAPE), 60.0, np.float32))
    store.mark_complete()
    return store


def live(config: PSOCTScanConfig, mosaic: PSOCTMosaicId, modality: str) -> OmeZarrPyramid:
    """The live preview pyramid of a mosaic's modality, where the engine writes it."""
    return pyramid(live_path(config, mosaic, modality))


def region(mosaic: PSOCTMosaicId, modality: str, store: OmeZarrPyramid, y: int, x: int) -> RegionWritten:
    """Write a 16 × 16 block of 70 dB at (y, x) and the message the engine sends about it."""
    store.write_region((slice(y, y + 16), slice(x, x + 16)), np.full((16, 16), 70.0, np.float32))
    return RegionWritten(mosaic, modality, (y, y + 16, x, x + 16), str(store.path))


def write_strip_mip(config: LSMScanConfig, channel: int, strip: int, shape: tuple[int, int] = MIP_SHAPE) -> np.ndarray:
    """A strip MIP whose value says where it belongs: 1000·channel + 100·strip + row index."""
    mip = (1000 * channel + 100 * strip + np.arange(shape[0], dtype=np.uint16)[:, None]).repeat(shape[1], axis=1)
    path = config.output_root / naming.lsm_strip_mip_name(LSMStripId(config.project_name, 1, channel, strip))
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, mip.astype(np.uint16))
    return mip.astype(np.uint16)
