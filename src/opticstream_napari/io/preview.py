"""JPEG quick-look previews of en-face mosaics.

Intensity modalities are windowed grey; orientation is colour: hue from the angle in degrees
(180°-periodic, so -90° and +90° share a hue; the original fed degrees to a radians formula),
brightness from retardance or AIP when given. Uncovered (NaN) pixels are black. A JPEG side
holds at most 65,500 pixels (libjpeg's limit), so a preview larger than that, or than the
caller's ``max_size``, is shrunk; a light-sheet channel mosaic of a hundred strips is taller.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from opticstream_napari.io.atomic import atomic_write_bytes
from opticstream_napari.io.output import ensure_output_dir

_PERCENTILES = (1.0, 99.0)
_SAMPLE = 1 << 20
_BLOCK_PIXELS = 1 << 20  # previews are made this many source pixels at a time, so float copies stay small
JPEG_MAX_SIDE = 65_500
ORIENTATION_WINDOW = (-90.0, 90.0)


def default_window(data: np.ndarray, modality: str = "") -> tuple[float, float]:
    """Display range: the full angle range for orientation, else the 1st-99th percentile.

    Percentiles of an evenly strided sample keep the cost flat on large mosaics and ignore the few
    saturated or dark outliers a min-max window would stretch to.
    """
    if modality.lower() in ("ori", "o3d"):
        return ORIENTATION_WINDOW
    sample = data.reshape(-1)
    if sample.size > _SAMPLE:
        sample = sample[:: sample.size // _SAMPLE]
    finite = sample[np.isfinite(sample)]
    if finite.size == 0:
        return (0.0, 1.0)
    lo, hi = (float(v) for v in np.percentile(finite, _PERCENTILES))
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def _unit(data: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Map ``window`` to [0, 1]; NaN stays NaN."""
    lo, hi = window
    return np.clip((data.astype(np.float32) - lo) / np.float32(hi - lo), 0.0, 1.0)


def grey_image(data: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """uint8 ``(y, x)``: the window stretched to 0-255, NaN black; made in row blocks, so a
    mosaic of hundreds of megapixels needs no float copy of itself."""
    out = np.empty(data.shape, dtype=np.uint8)
    rows = max(1, _BLOCK_PIXELS // max(1, data[:1].size))
    for r0 in range(0, len(data), rows):
        out[r0:r0 + rows] = np.nan_to_num(_unit(data[r0:r0 + rows], window) * 255.0, nan=0.0)
    return out


def block_means(data: np.ndarray, factor: int) -> np.ndarray:
    """float32 means of the finite samples of each ``factor`` × ``factor`` block (NaN where none),
    made a band of rows at a time: a preview of a mosaic far larger than memory needs memory of
    its own size only, and the mosaic may be a mapped file."""
    height, width = (-(-n // factor) for n in data.shape)
    out = np.empty((height, width), dtype=np.float32)
    band = max(1, _BLOCK_PIXELS // (factor * factor * width))
    for o0 in range(0, height, band):
        rows = data[o0 * factor:(o0 + band) * factor].astype(np.float32)
        blocks = -(-rows.shape[0] // factor)
        padded = np.full((blocks * factor, width * factor), np.nan, dtype=np.float32)
        padded[:rows.shape[0], :rows.shape[1]] = rows
        padded = padded.reshape(blocks, factor, width, factor)
        finite = np.isfinite(padded)
        count = finite.sum(axis=(1, 3))
        total = np.where(finite, padded, 0.0).sum(axis=(1, 3))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[o0:o0 + blocks] = np.where(count > 0, total / count, np.nan)
    return out


def orientation_image(
    orientation_deg: np.ndarray,
    value: np.ndarray | None = None,
    value_window: tuple[float, float] | None = None,
) -> np.ndarray:
    """uint8 ``(y, x, 3)``: hue = angle mod 180° over the colour wheel, saturation 1, value from
    ``value`` (e.g. retardance or AIP) windowed to [0, 1], or full brightness without it."""
    hue = np.mod(orientation_deg.astype(np.float32), 180.0) / np.float32(180.0)
    if value is None:
        brightness = np.ones_like(hue)
    else:
        if value.shape != orientation_deg.shape:
            raise ValueError(f"value {value.shape} does not match orientation {hue.shape}")
        brightness = _unit(value, value_window or default_window(value))
    brightness = np.where(np.isfinite(hue), brightness, 0.0)
    rgb = _hsv_full_saturation(np.nan_to_num(hue, nan=0.0), np.nan_to_num(brightness, nan=0.0))
    return (rgb * 255.0 + 0.5).astype(np.uint8)


def _hsv_full_saturation(hue: np.ndarray, value: np.ndarray) -> np.ndarray:
    sector = hue * 6.0
    index = np.floor(sector).astype(np.int64) % 6
    frac = sector - np.floor(sector)
    rising, falling, zero = value * frac, value * (1.0 - frac), np.zeros_like(value)
    table = [
        (value, rising, zero),
        (falling, value, zero),
        (zero, value, rising),
        (zero, falling, value),
        (rising, zero, value),
        (value, zero, falling),
    ]
    rgb = np.zeros((*hue.shape, 3), dtype=np.float32)
    for sextant, channels in enumerate(table):
        chosen = index == sextant
        for c, channel in enumerate(channels):
            rgb[..., c][chosen] = channel[chosen]
    return rgb


def write_preview(
    path: str | os.PathLike[str],
    mosaic: np.ndarray,
    modality: str,
    *,
    window: tuple[float, float] | None = None,
    value: np.ndarray | None = None,
    max_size: int = 2048,
    quality: int = 90,
) -> Path:
    """Write a JPEG (a PNG when ``path`` ends in ``.png``) of a ``(y, x)`` mosaic, shrunk to at
    most ``max_size`` (and :data:`JPEG_MAX_SIDE`) pixels a side: grey ones first by whole-block
    means (:func:`block_means`), then, like orientation, by Lanczos resampling.

    Orientation (``ori``, ``O3D``) is drawn in colour with ``value`` as brightness; every other
    modality is grey in ``window`` (default :func:`default_window`).
    """
    if mosaic.ndim != 2:
        raise ValueError(f"a preview is drawn from a 2D (y, x) mosaic, found shape {mosaic.shape}")
    path = Path(path)
    ensure_output_dir(path.parent)
    side = max(1, min(max_size, JPEG_MAX_SIDE))
    if modality.lower() in ("ori", "o3d"):
        image = Image.fromarray(orientation_image(mosaic, value))
    else:
        window = window or default_window(mosaic, modality)
        factor = max(mosaic.shape) // side
        image = Image.fromarray(grey_image(block_means(mosaic, factor) if factor > 1 else mosaic, window))
    image.thumbnail((side, side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if path.suffix.lower() == ".png":
        image.save(buffer, format="PNG")
    else:
        image.save(buffer, format="JPEG", quality=quality)
    return atomic_write_bytes(path, buffer.getvalue())
