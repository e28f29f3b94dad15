"""The LSM steps run on the executor: compress a strip, concatenate a channel's MIPs (spec 4.11)
and, when ``stitch_volume`` is on, its volumes.

Strip: the Zyla spool set is written block by block as an OME-Zarr 0.5 pyramid, and its
maximum over camera rows, taken from the same blocks as they pass, as a uint16 TIFF of (camera
columns, frames) with two JPEG previews. Each block is read from the spool files once and
there is no second pass for the MIP: a raw strip (25 GB at the default threshold) is larger
than the page cache, so every extra pass is a read from disk. The raw folder and the outputs
are checked against the config's size thresholds.

Channel: each strip MIP is split into the two camera halves (``ch1``, ``ch2``) along its first
axis, and the halves of strips 1..N are concatenated along that axis: a concatenation, not a
registration, as in the original. Its JPEG previews are shrunk to :data:`PREVIEW_MAX_SIDE`: a
hundred strips make a mosaic taller than a JPEG can be (the original's full-size JPEG fails
there). Each preview is written before its TIFF, which is the output the viewer and the state
take as done.

Channel volume: the same concatenation in 3D. Each camera half of every strip's full-resolution
OME-Zarr level is placed side by side along the camera columns, so the volume's maximum over
camera rows is the half's MIP mosaic; it is written as its own OME-Zarr pyramid, streamed by
write unit from the strip stores. The original only made an empty placeholder folder here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from opticstream_napari import naming
from opticstream_napari.config import LSMScanConfig
from opticstream_napari.host import usable_cores
from opticstream_napari.identity import LSMChannelId, LSMStripId
from opticstream_napari.io.atomic import atomic_path
from opticstream_napari.io.mip_tiff import common_mip_shape, mapped_mip, read_mip, write_mip
from opticstream_napari.io.ome_zarr import OmeZarrPyramid, is_complete, open_pyramid, write_pyramid
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


class StripVolumeError(ValueError):
    """A strip OME-Zarr a channel volume needs is missing, unfinished or of another shape; names it."""


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


class _RowMaximum:
    """A strip as :func:`write_pyramid` reads it, folding each block's maximum over camera rows
    into :attr:`mip` on the way: every block is read once, so the MIP needs no pass of its own."""

    def __init__(self, strip: ZylaStrip) -> None:
        self._strip = strip
        self.shape = strip.shape
        self.dtype = strip.dtype
        self.mip = np.zeros(strip.shape[1:], dtype=strip.dtype)
        self._lock = threading.Lock()

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        block = self._strip[key]
        top = block.max(axis=0, initial=0)
        with self._lock:
            view = self.mip[key[1:]]
            np.maximum(view, top, out=view)
        return block


def _cores(config: LSMScanConfig, threads: int | None) -> int:
    return min(threads or usable_cores(), config.num_workers)


def compress_strip(
    config_data: dict[str, Any], strip_data: dict[str, Any], folder: str, threads: int | None = None
) -> dict[str, Any]:
    """Executor entry point: strip folder in; OME-Zarr, MIP TIFF and previews out (their paths).

    Write units in flight are bounded by the memory available and by the cores: the task's
    share of the executor (``threads``; None: every core), at most the config's ``num_workers``.
    A 1024³ shard of uint16 is 2 GiB; one unit in flight peaks at about 5 GiB.
    """
    start = time.perf_counter()
    config = LSMScanConfig.model_validate(config_data)
    strip = LSMStripId.from_dict(strip_data)
    raw = Path(folder)
    _check_size(raw, config.strip_folder_size_threshold, _GB, "the raw strip folder", "strip_folder_size_threshold")
    data = _RowMaximum(ZylaStrip(raw, info_file=config.info_file))
    root = config.output_root
    zarr = write_pyramid(root / naming.lsm_strip_zarr_name(strip), data, VOXEL_UM, zarr_config=config.zarr_config,
                         overwrite=True, workers=None, cores=_cores(config, threads))
    _check_size(zarr, config.compressed_min_zarr_gb, _GB, "the strip OME-Zarr", "compressed_min_zarr_gb")
    outputs = {"zarr": str(zarr)}
    if config.generate_mip:
        mip = data.mip.astype(np.uint16, copy=False)
        tiff = write_mip(root / naming.lsm_strip_mip_name(strip), mip)
        _check_size(tiff, config.compressed_min_mip_mb, _MB, "the strip MIP", "compressed_min_mip_mb")
        outputs["mip"] = str(tiff)
        axis = int(np.argmax(mip.shape))
        for name, part in zip(naming.lsm_strip_preview_names(strip), np.array_split(mip, 2, axis=axis), strict=True):
            outputs[name] = str(_write_jpeg(root / name, part, _window(config, mip)))
    return {"outputs": outputs, "seconds": time.perf_counter() - start}


def _halves(columns: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """The camera columns of ``ch1`` and ``ch2``: the first half takes the odd one, as np.array_split does."""
    split = -(-columns // 2)
    return (0, split), (split, columns)


def _strip_paths(config: LSMScanConfig, channel: LSMChannelId, name: Callable[[LSMStripId], str]) -> list[Path]:
    return [config.output_root / name(LSMStripId(channel.project, channel.slice, channel.channel, s))
            for s in range(1, config.strips_per_slice + 1)]


def stitch_channel_mip(config_data: dict[str, Any], channel_data: dict[str, Any]) -> dict[str, Any]:
    """Executor entry point: the ``ch1``/``ch2`` MIP mosaics of a channel (TIFF and JPEG).

    Each half is filled strip by strip through a mapped TIFF: the step holds one strip, not the
    slice (a hundred strips of 40 000 frames make 8 GB per half).
    """
    config = LSMScanConfig.model_validate(config_data)
    channel = LSMChannelId.from_dict(channel_data)
    root = config.output_root
    paths = _strip_paths(config, channel, naming.lsm_strip_mip_name)
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{channel}: {len(missing)} of {config.strips_per_slice} strip MIPs are missing: {', '.join(missing)}"
        )
    rows, columns = common_mip_shape(paths)
    outputs = {}
    for half, (r0, r1) in zip(_HALVES, _halves(rows), strict=True):
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


class _StripHalves:
    """One camera half of a channel's strips as a single ``(z, y, x)`` volume: strip ``k``'s columns
    ``[first, last)`` at ``y`` in ``[(k-1)·w, k·w)``, read from the strips' full resolution as write
    units ask for them (a unit of the default 1024³ shards lies within one strip)."""

    def __init__(self, strips: list[OmeZarrPyramid], first: int, last: int) -> None:
        rows, _, frames = strips[0].shape
        self._strips = strips
        self._first = first
        self._width = last - first
        self.shape = (rows, len(strips) * self._width, frames)
        self.dtype = strips[0].dtype

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        rows, columns, frames = key
        y0, y1, _ = columns.indices(self.shape[1])
        w = self._width
        parts = []
        for k in range(y0 // w, -(-y1 // w)):
            lo, hi = max(y0, k * w) - k * w, min(y1, (k + 1) * w) - k * w
            region = (rows, slice(self._first + lo, self._first + hi), frames)
            parts.append(self._strips[k].read(0, region))
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


def _open_strips(paths: list[Path]) -> list[OmeZarrPyramid]:
    """Every strip store, checked before anything is written: present, finished, one shape and type."""
    unusable = [str(p) for p in paths if not is_complete(p)]
    if unusable:
        raise StripVolumeError(
            f"{len(unusable)} of {len(paths)} strip OME-Zarrs are missing or unfinished: {', '.join(unusable)}"
        )
    strips = [open_pyramid(p) for p in paths]
    first = strips[0]
    for path, strip in zip(paths, strips, strict=True):
        if strip.shape != first.shape or strip.dtype != first.dtype:
            raise StripVolumeError(
                f"{path}: its volume is {strip.shape} {strip.dtype}, {paths[0].name}'s is "
                f"{first.shape} {first.dtype}; a channel volume needs strips of one shape"
            )
    return strips


def stitch_channel_volume(
    config_data: dict[str, Any], channel_data: dict[str, Any], threads: int | None = None
) -> dict[str, Any]:
    """Executor entry point: the ``ch1``/``ch2`` volumes of a channel as OME-Zarr pyramids (their paths).

    Memory is a few write units, whatever the channel's size (100 real strips make 2.5 TB); the
    cores are shared out as for a strip.
    """
    config = LSMScanConfig.model_validate(config_data)
    channel = LSMChannelId.from_dict(channel_data)
    paths = _strip_paths(config, channel, naming.lsm_strip_zarr_name)
    strips = _open_strips(paths)
    outputs = {}
    for half, (first, last) in zip(_HALVES, _halves(strips[0].shape[1]), strict=True):
        path = write_pyramid(
            config.output_root / naming.lsm_channel_volume_name(channel, half), _StripHalves(strips, first, last),
            VOXEL_UM, zarr_config=config.zarr_config, overwrite=True, workers=None, cores=_cores(config, threads),
        )
        if not config.skip_channel_volume_zarr_validation:
            _check_size(path, config.channel_volume_zarr_size_threshold, _GB, "the channel volume",
                        "channel_volume_zarr_size_threshold")
        outputs[half] = str(path)
    return {"outputs": outputs, "strip_count": len(strips)}
