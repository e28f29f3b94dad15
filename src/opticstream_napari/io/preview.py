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
from opticstream_napari.io.downsample import Reduction, pool2
from opticstream_napari.io.output import ensure_output_dir

_PERCENTILES = (1.0, 99.0)
_SAMPLE = 1 << 20
_BLOCK_PIXELS = 1 << 20  # grey levels are made this many pixels at a time, so float copies stay small
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


def orientation_image(
    orientation_deg: np.ndarray,
    value: np.ndarray | None = None,
    value_window: tuple[float, float] | None = None,
) -> np.ndarray:
    """uint8 ``(y, x, 3)``: hue = angle mod 180° over the colour wheel, saturation 1, value from
    ``value`` (e.g. retardance or AIP) windowed to [0, 1], or full brightness without it."""
    _check_brightness(orientation_deg, value)
    hue = np.mod(orientation_deg.astype(np.float32), 180.0) / np.float32(180.0)
    brightness = np.ones_like(hue) if value is None else _unit(value, value_window or default_window(value))
    brightness = np.where(np.isfinite(hue), brightness, 0.0)
    rgb = _hsv_full_saturation(np.nan_to_num(hue, nan=0.0), np.nan_to_num(brightness, nan=0.0))
    return (rgb * 255.0 + 0.5).astype(np.uint8)


def _check_brightness(orientation_deg: np.ndarray, value: np.ndarray | None) -> None:
    if value is not None and value.shape != orientation_deg.shape:
        raise ValueError(f"value {value.shape} does not match orientation {orientation_deg.shape}")


def _halved(
    mosaic: np.ndarray, value: np.ndarray | None, side: int, reduction: Reduction
) -> tuple[np.ndarray, np.ndarray | None]:
    """The mosaic (and brightness) pooled 2× at a time, as the pyramid levels are, until within
    twice ``side``: a preview then never handles a full-size copy (colouring or windowing a large
    mosaic costs seconds), and a mapped mosaic is read once, sequentially."""
    while max(mosaic.shape) >= 2 * side:
        mosaic = pool2(mosaic, reduction)
        value = None if value is None else pool2(value)
    return mosaic, value


def _hsv_full_saturation(hue: np.ndarray, value: np.ndarray) -> np.ndarray:
    """RGB at full saturation of ``hue`` in [0, 1): each channel is a clipped triangle over the
    colour wheel, so no per-sextant masks (which cost seconds on a large mosaic)."""
    six = hue.astype(np.float32) * np.float32(6.0)
    rgb = np.empty((*hue.shape, 3), dtype=np.float32)
    rgb[..., 0] = np.clip(np.abs(six - 3.0) - 1.0, 0.0, 1.0)
    rgb[..., 1] = np.clip(2.0 - np.abs(six - 2.0), 0.0, 1.0)
    rgb[..., 2] = np.clip(2.0 - np.abs(six - 4.0), 0.0, 1.0)
    rgb *= value[..., np.newaxis]
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
    most ``max_size`` (and :data:`JPEG_MAX_SIDE`) pixels a side: halved as the pyramid levels are
    (orientation as angles) while at least twice too large, then resampled (Lanczos).

    Orientation (``ori``, ``O3D``) is drawn in colour with ``value`` as brightness; every other
    modality is grey in ``window`` (default :func:`default_window`).
    """
    if mosaic.ndim != 2:
        raise ValueError(f"a preview is drawn from a 2D (y, x) mosaic, found shape {mosaic.shape}")
    path = Path(path)
    ensure_output_dir(path.parent)
    side = max(1, min(max_size, JPEG_MAX_SIDE))
    if modality.lower() in ("ori", "o3d"):
        _check_brightness(mosaic, value)
        value_window = None if value is None else default_window(value)  # of every sample, as grey ones
        image = Image.fromarray(orientation_image(*_halved(mosaic, value, side, Reduction.CIRCULAR_180), value_window))
    else:
        window = window or default_window(mosaic, modality)
        image = Image.fromarray(grey_image(_halved(mosaic, None, side, Reduction.MEAN)[0], window))
    image.thumbnail((side, side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if path.suffix.lower() == ".png":
        image.save(buffer, format="PNG")
    else:
        image.save(buffer, format="JPEG", quality=quality)
    return atomic_write_bytes(path, buffer.getvalue())
