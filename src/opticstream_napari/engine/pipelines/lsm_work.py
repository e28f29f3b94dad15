"""The LSM steps run on the executor: compress a strip, and concatenate a channel's MIPs (spec 4.11).

Strip: the Zyla spool set is read lazily and written as an OME-Zarr 0.5 pyramid, its maximum
over camera rows as a uint16 TIFF of (camera columns, frames), with two JPEG previews. The raw
folder and the outputs are checked against the config's size thresholds.

Channel: each strip MIP is split into the two camera halves (``ch1``, ``ch2``) along its first
axis, and the halves of strips 1..N are concatenated along that axis: a concatenation, not a
registration, as in the original. Its JPEG previews are shrunk to :data:`PREVIEW_MAX_SIDE`: a
hundred strips make a mosaic taller than a JPEG can be (the original's full-size JPEG fails
there). Each preview is written before its TIFF, which is the output the viewer and the state
take as done.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from opticstream_napari import naming
from opticstream_napari.config import LSMScanConfig
from opticstream_napari.identity import LSMChannelId, LSMStripId
from opticstream_napari.io.atomic import atomic_path
from opticstream_napari.io.mip_tiff import common_mip_shape, mapped_mip, read_mip, write_mip
from opticstream_napari.io.ome_zarr import write_pyramid
from opticstream_napari.io.preview import default_window, write_preview
from opticstream_napari.io.zyla import ZylaStrip

VOXEL_UM = (1.0, 1.0, 1.0)  # the strip's voxel size is not in the config; the original wrote 1 µm too
_GB = 2**30
_MB = 2**20
_HALVES = ("ch1", "ch2")
PREVIEW_MAX_SIDE = 16_384  # a strip's halves keep full resolution; a channel mosaic is shrunk
PREVIEW_QUALITY = 85


class StripCheckError(ValueError):
    """A strip or its outputs fail a size threshold of the config; names the path and both sizes."""


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _check_size(path: Path, minimum: float, unit: int, what: str, field: str) -> None:
    size = _size(path)
    if size < minimum * unit:
        label = "GB" if unit == _GB else "MB"
        raise StripCheckError(
            f"{path}: {what} is {size / unit:.4g} {label}, below {field} = {minimum:g} {label}"
        )


def _write_jpeg(path: Path, data: np.ndarray, window: tuple[float, float]) -> Path:
    return write_preview(path, data, "mip", window=window, max_size=PREVIEW_MAX_SIDE, quality=PREVIEW_QUALITY)


def _window(config: LSMScanConfig, data: np.ndarray) -> tuple[float, float]:
    return config.output_mip_preview_window or default_window(data)


def compress_strip(config_data: dict[str, Any], strip_data: dict[str, Any], folder: str) -> dict[str, Any]:
    """Executor entry point: strip folder in; OME-Zarr, MIP TIFF and previews out (their paths)."""
    start = time.perf_counter()
    config = LSMScanConfig.model_validate(config_data)
    strip = LSMStripId.from_dict(strip_data)
    raw = Path(folder)
    _check_size(raw, config.strip_folder_size_threshold, _GB, "the raw strip folder", "strip_folder_size_threshold")
    data = ZylaStrip(raw, info_file=config.info_file).to_dask()
    root = config.output_root
    zarr = write_pyramid(root / naming.lsm_strip_zarr_name(strip), data, VOXEL_UM, zarr_config=config.zarr_config,
                         overwrite=True)
    _check_size(zarr, config.compressed_min_zarr_gb, _GB, "the strip OME-Zarr", "compressed_min_zarr_gb")
    outputs = {"zarr": str(zarr)}
    if config.generate_mip:
        mip = np.asarray(data.max(axis=0).compute(), dtype=np.uint16)
        tiff = write_mip(root / naming.lsm_strip_mip_name(strip), mip)
        _check_size(tiff, config.compressed_min_mip_mb, _MB, "the strip MIP", "compressed_min_mip_mb")
        outputs["mip"] = str(tiff)
        axis = int(np.argmax(mip.shape))
        for name, part in zip(naming.lsm_strip_preview_names(strip), np.array_split(mip, 2, axis=axis), strict=True):
            outputs[name] = str(_write_jpeg(root / name, part, _window(config, mip)))
    return {"outputs": outputs, "seconds": time.perf_counter() - start}


def stitch_channel_mip(config_data: dict[str, Any], channel_data: dict[str, Any]) -> dict[str, Any]:
    """Executor entry point: the ``ch1``/``ch2`` MIP mosaics of a channel (TIFF and JPEG).

    Each half is filled strip by strip through a mapped TIFF: the step holds one strip, not the
    slice (a hundred strips of 40 000 frames make 8 GB per half).
    """
    config = LSMScanConfig.model_validate(config_data)
    channel = LSMChannelId.from_dict(channel_data)
    root = config.output_root
    paths = [root / naming.lsm_strip_mip_name(LSMStripId(channel.project, channel.slice, channel.channel, s))
             for s in range(1, config.strips_per_slice + 1)]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{channel}: {len(missing)} of {config.strips_per_slice} strip MIPs are missing: {', '.join(missing)}"
        )
    rows, columns = common_mip_shape(paths)
    split = -(-rows // 2)  # the first half takes the odd row, as np.array_split does
    outputs = {}
    for half, (r0, r1) in zip(_HALVES, ((0, split), (split, rows)), strict=True):
        final = root / naming.lsm_channel_mip_name(channel, half)
        height = r1 - r0
        with atomic_path(final) as tmp:
            mosaic = mapped_mip(tmp, (len(paths) * height, columns))
            for i, path in enumerate(paths):
                mosaic[i * height:(i + 1) * height] = read_mip(path)[r0:r1]
            mosaic.flush()
            _write_jpeg(root / naming.lsm_channel_mip_name(channel, half, "jpg"), mosaic, _window(config, mosaic))
            del mosaic
        outputs[half] = str(final)
    return {"outputs": outputs, "mip_count": len(paths)}
