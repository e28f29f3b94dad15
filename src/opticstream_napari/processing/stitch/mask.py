"""Tissue mask from the AIP mosaic, and applying it to the other modalities (spec 4.8).

The mask is uint8 0/255 like the original. Two departures: the blur ignores uncovered (NaN)
pixels instead of spreading them, and background regions that touch the image border are never
filled as "holes" (the original kept only the largest background region, so a band of tissue
spanning the mosaic filled one whole side of it).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

MASK_ON = 255
_EIGHT = np.ones((3, 3), dtype=bool)
_MASKED = frozenset({"ret", "ori", "biref", "surf", "dbi", "r3d", "o3d"})


def make_mask(aip: np.ndarray, threshold: float, sigma: float = 1.0) -> np.ndarray:
    """Blur (σ px), threshold (``> threshold`` dB), keep the largest component, fill holes."""
    if aip.ndim != 2:
        raise ValueError(f"the mask is computed from a 2D AIP mosaic, found shape {aip.shape}")
    valid = np.isfinite(aip)
    weights = ndimage.gaussian_filter(valid.astype(np.float32), sigma)
    blurred = ndimage.gaussian_filter(np.where(valid, aip, 0).astype(np.float32), sigma)
    inside = valid & (blurred > threshold * np.maximum(weights, 1e-6))
    tissue = _fill_holes(_largest_component(inside))
    return tissue.astype(np.uint8) * np.uint8(MASK_ON)


def _largest_component(foreground: np.ndarray) -> np.ndarray:
    labels, count = ndimage.label(foreground, structure=_EIGHT)
    if count == 0:
        return foreground
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def _fill_holes(tissue: np.ndarray) -> np.ndarray:
    """Fill background regions (4-connected) except the largest and any touching the border."""
    labels, count = ndimage.label(~tissue)
    if count <= 1:
        return tissue
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    border = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    keep = np.zeros(count + 1, dtype=bool)
    keep[border] = True
    keep[int(np.argmax(sizes))] = True
    keep[0] = True
    return tissue | ~keep[labels]


def is_masked(modality: str, apply_mask: bool = True) -> bool:
    """Which mosaics the AIP mask applies to: ret, ori, biref, surf and the volumes."""
    return apply_mask and modality.lower() in _MASKED


def mask_fill_value(modality: str) -> float:
    """NaN (no data) outside the tissue, except the surface depth index, which gets 0."""
    return 0.0 if modality.lower() == "surf" else float("nan")


def apply_mask(mosaic: np.ndarray, mask: np.ndarray, fill: float = float("nan")) -> np.ndarray:
    """A copy of ``mosaic`` with ``fill`` outside the mask; the mask broadcasts over depth."""
    if mosaic.shape[-2:] != mask.shape:
        raise ValueError(f"mask {mask.shape} does not match the mosaic plane {mosaic.shape[-2:]}")
    if np.isnan(fill) and not np.issubdtype(mosaic.dtype, np.floating):
        raise TypeError(f"cannot mark masked pixels NaN in a {mosaic.dtype} mosaic")
    return np.where(mask > 0, mosaic, np.asarray(fill, dtype=mosaic.dtype))
