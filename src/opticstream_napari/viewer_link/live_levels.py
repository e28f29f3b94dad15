"""En-face mosaics held in memory, so showing or refreshing them never reads the disk on the GUI thread.

napari slices a layer's data on the GUI thread. From an on-disk pyramid every refresh of a
growing mosaic read and decompressed its chunks there (100–150 ms for a 1400 × 2000 mosaic on
the 2-core test machine); from numpy arrays it takes a few milliseconds. So a live preview is
loaded into memory off the GUI thread, from the first level that fits :data:`LEVEL_BUDGET` down
to the coarsest, and the regions the engine writes are read off the GUI thread too and copied
in on it. A final en-face mosaic is loaded too when its full resolution fits the budget; a
larger one, and every volume, stays lazy on disk, so full-resolution QC is never lost.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from opticstream_napari import naming
from opticstream_napari.io.ome_zarr import OmeZarrPyramid, open_pyramid
from opticstream_napari.viewer_link.layer_specs import (
    LayerKey,
    LayerSpec,
    ScanConfigModel,
    SliceLayers,
    slice_layer_specs,
)

LEVEL_BUDGET = 64 * 2**20  # bytes of the finest level held per live layer: 4096 × 4096 float32
Region = tuple[int, int, int, int]  # level-0 (y0, y1, x0, x1), as the engine reports it


@dataclass(frozen=True, slots=True)
class Patch:
    """New values for ``box`` of the ``index``-th array held for a layer."""

    index: int
    box: tuple[slice, ...]
    data: np.ndarray


def is_live_preview(spec: LayerSpec) -> bool:
    return spec.kind == "image" and Path(spec.source).parent.name == naming.LIVE_FOLDER


def load_live_levels(spec: LayerSpec, budget: int = LEVEL_BUDGET) -> LayerSpec:
    """The spec with its pyramid read into numpy, from the spec's first level or the first that fits."""
    pyramid = open_pyramid(spec.source)
    first = len(pyramid.levels) - len(spec.data)
    while first < len(pyramid.levels) - 1 and _nbytes(pyramid, first) > budget:
        first += 1
    arrays = [pyramid.read(level) for level in range(first, len(pyramid.levels))]
    kwargs: dict[str, Any] = {
        **spec.kwargs, "scale": pyramid.levels[first].scale, "translate": pyramid.levels[first].translation}
    return dataclasses.replace(spec, data=arrays, kwargs=kwargs)


def _nbytes(pyramid: OmeZarrPyramid, level: int) -> int:
    return int(np.prod(pyramid.levels[level].shape)) * pyramid.dtype.itemsize


def _small_final(spec: LayerSpec, budget: int) -> bool:
    """A final 2D mosaic whose full resolution fits the budget."""
    if spec.kind != "image" or not isinstance(spec.data, list) or spec.data[0].ndim != 2:
        return False
    return int(np.prod(spec.data[0].shape)) * spec.data[0].dtype.itemsize <= budget


def needs_loading(spec: LayerSpec) -> bool:
    """A spec shown from memory (a live preview, a small final mosaic) whose levels are still lazy."""
    held = is_live_preview(spec) or _small_final(spec, LEVEL_BUDGET)
    return held and not all(isinstance(level, np.ndarray) for level in spec.data)


def loaded(spec: LayerSpec) -> LayerSpec:
    """The spec ready for the GUI thread: levels in memory where it is shown from memory."""
    return load_live_levels(spec) if needs_loading(spec) else spec


def live_slice_layers(
    config: ScanConfigModel,
    slice_id: int,
    known: dict[LayerKey, str],
    preview_level: int = 0,
    lazy: frozenset[LayerKey] = frozenset(),
) -> SliceLayers:
    """:func:`slice_layer_specs`, with live previews and small final mosaics in memory (off the GUI thread).

    Roles in ``lazy`` (hidden layers) keep their levels on disk: they are read only if shown.
    """
    found = slice_layer_specs(config, slice_id, known, preview_level)
    specs = [spec if spec.key in lazy else loaded(spec) for spec in found.specs]
    return dataclasses.replace(found, specs=specs)


def read_patches(source: str, held: int, regions: list[Region]) -> list[Patch]:
    """What changed in the ``held`` coarsest levels of ``source`` within ``regions``, one box per level."""
    pyramid = open_pyramid(source)
    first = len(pyramid.levels) - held
    y0, y1 = min(r[0] for r in regions), max(r[1] for r in regions)
    x0, x1 = min(r[2] for r in regions), max(r[3] for r in regions)
    finest = pyramid.levels[0]
    patches = []
    for index, level in enumerate(pyramid.levels[first:]):
        fy, fx = (round(s / s0) for s, s0 in zip(level.scale[-2:], finest.scale[-2:], strict=True))
        height, width = level.shape[-2:]
        box = (_span(y0, y1, fy, height), _span(x0, x1, fx, width))
        patches.append(Patch(index, box, pyramid.read(first + index, box)))
    return patches


def _span(start: int, stop: int, factor: int, size: int) -> slice:
    """Level-0 [start, stop) on a level ``factor`` times coarser: every sample it touches, never empty."""
    a = min(start // factor, size - 1)
    return slice(a, max(a + 1, min(size, -(-stop // factor))))
