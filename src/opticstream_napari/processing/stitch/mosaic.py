"""One mosaic's en-face maps: blend every modality at the placed positions, then mask.

Tiles are read through a callback, one modality at a time, so the caller decides where they
come from (per-tile NIfTI outputs, memory, a test) and only one modality's tiles are in play
at once. Positions are ``(y, x)`` pixels from :func:`place_tiles` or a template.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from opticstream_napari.processing.stitch.blend import MosaicLayout, blend_mode_for, blend_region
from opticstream_napari.processing.stitch.mask import apply_mask, is_masked, make_mask, mask_fill_value

EnfaceReader = Callable[[int, str], np.ndarray | None]
"""``read(tile, modality)``: that tile's (y, x) map, or None when the tile is missing or failed."""

MASK_SOURCE = "aip"


@dataclass(frozen=True, slots=True)
class EnfaceMosaic:
    """Blended (y, x) float32 maps (NaN where no tile has data) and the 0/255 tissue mask."""

    layout: MosaicLayout
    maps: dict[str, np.ndarray]
    mask: np.ndarray | None


def fuse_enface(
    read: EnfaceReader,
    positions: Mapping[int, Sequence[float]],
    tile_shape: Sequence[int],
    overlap_fraction: float,
    modalities: Iterable[str],
    *,
    mask_threshold: float | None = None,
    mask: bool = True,
) -> EnfaceMosaic:
    """Blend each modality; with an AIP map and a threshold, derive the mask and apply it.

    ``mask=False`` still derives the mask (it is an output of its own) but leaves the maps whole.
    """
    layout = MosaicLayout.from_positions(positions, tile_shape, overlap_fraction)
    region = tuple(slice(0, n) for n in layout.shape)
    maps: dict[str, np.ndarray] = {}
    for modality in modalities:
        cache: dict[int, np.ndarray | None] = {}

        def part(tile: int, where: tuple[slice, ...], modality: str = modality,
                 cache: dict[int, np.ndarray | None] = cache) -> np.ndarray | None:
            if tile not in cache:
                cache[tile] = read(tile, modality)
            data = cache[tile]
            return None if data is None else data[where]

        maps[modality] = blend_region(layout, region, part, blend_mode_for(modality))
    tissue = None
    if mask_threshold is not None and MASK_SOURCE in maps:
        tissue = make_mask(maps[MASK_SOURCE], mask_threshold)
        if mask:
            for modality, values in maps.items():
                if is_masked(modality):
                    maps[modality] = apply_mask(values, tissue, fill=mask_fill_value(modality))
    return EnfaceMosaic(layout, maps, tissue)
