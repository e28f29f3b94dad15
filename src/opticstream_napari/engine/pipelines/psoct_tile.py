"""The engine's PS-OCT tile step: which raw file feeds a tile, how big it must be, and the
executor entry point around :class:`io.psoct_tile.TileProcessor` (read, check, reconstruct,
write every per-tile output all-or-nothing) with FFT plans shared between processes."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from opticstream_napari.config import PSOCTScanConfig, TileSavingType
from opticstream_napari.engine.plans import shared_plans, wisdom_path
from opticstream_napari.identity import PSOCTTileId
from opticstream_napari.io.psoct_outputs import tile_output_paths
from opticstream_napari.io.psoct_raw import NIFTI_HEADER_BYTES, TileGeometry, full_depth
from opticstream_napari.io.psoct_tile import TileProcessor
from opticstream_napari.layout import mosaic_role
from opticstream_napari.naming import RawTileKind

# The file the engine reconstructs a tile from: the complex one whenever the rig writes it (cheaper).
_INPUT_KIND = {
    TileSavingType.SPECTRAL: RawTileKind.SPECTRAL,
    TileSavingType.SPECTRAL_12BIT: RawTileKind.SPECTRAL_12BIT,
    TileSavingType.COMPLEX: RawTileKind.COMPLEX,
    TileSavingType.COMPLEX_WITH_SPECTRAL: RawTileKind.COMPLEX,
    TileSavingType.PROCESSED_WITH_SPECTRAL: RawTileKind.SPECTRAL,
}
_local = threading.local()


def input_kind(config: PSOCTScanConfig) -> RawTileKind:
    return _INPUT_KIND[config.acquisition.tile_saving_type]


def bucket_of(config: PSOCTScanConfig, mosaic: int) -> str:
    return mosaic_role(mosaic, config.mosaics_per_slice).bucket


def expected_raw_bytes(config: PSOCTScanConfig, bucket: str) -> int:
    """Size of a complete raw tile file of the input kind, from the config's geometry alone
    (complex tiles hold the full depth; the reader checks the same)."""
    acq = config.acquisition
    geometry = TileGeometry(acq.tile_size_x(bucket), acq.tile_size_y, acq.spectral_length,
                            full_depth(acq.spectral_length, config.processing.autocorr_cut))
    kind = input_kind(config)
    if kind is RawTileKind.SPECTRAL:
        return NIFTI_HEADER_BYTES + 2 * geometry.spectral_samples
    if kind is RawTileKind.SPECTRAL_12BIT:
        return geometry.spectral_samples * 3 // 2
    alines, blines, depth = geometry.complex_shape
    return NIFTI_HEADER_BYTES + 4 * alines * blines * depth


def tile_output_path(config: PSOCTScanConfig, tile: PSOCTTileId, modality: str) -> Path:
    return tile_output_paths(config, tile.mosaic, tile.tile)[modality]


def _processor(key: str, config_data: dict[str, Any], threads: int | None) -> TileProcessor:
    """One processor per thread and config: it keeps calibration, FFT plans and volume buffers
    between tiles, and its buffers must not be shared by two tiles at once."""
    processors: dict[str, TileProcessor] = _local.__dict__.setdefault("processors", {})
    if key not in processors:
        processors.clear()
        processors[key] = TileProcessor(PSOCTScanConfig.model_validate(config_data), threads)
    return processors[key]


def process_tile(config_data: dict[str, Any], tile_data: dict[str, Any], raw: str, threads: int | None) -> dict:
    """Executor entry point: plain data in; the output paths and the seconds spent out.

    FFT plans are shared with every other process through the project's wisdom file
    (:mod:`engine.plans`), so the outputs do not depend on which process ran the tile.
    """
    start = time.perf_counter()
    tile = PSOCTTileId.from_dict(tile_data)
    key = json.dumps([config_data, threads], sort_keys=True, default=str)
    processor = _processor(key, config_data, threads)
    config = processor.config
    with shared_plans(wisdom_path(config.project_base_path), (key, bucket_of(config, tile.mosaic))):
        outputs = processor.process(raw, tile.mosaic, tile.tile)
    return {"outputs": [str(p) for p in outputs.paths], "seconds": time.perf_counter() - start}
