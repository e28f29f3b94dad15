"""Shapes, chunking and metadata of an OME-Zarr 0.5 pyramid, computed before any data exists.

Kept apart from the writer so the layout can be planned (and tested) without touching disk.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from opticstream_napari.config.zarr import Codec, ZarrConfig
from opticstream_napari.io.downsample import Reduction, pooled_shape

OME_VERSION = "0.5"
UNIT = "micrometer"
AXES_2D = ("y", "x")
AXES_3D = ("z", "y", "x")


@dataclass(frozen=True, slots=True)
class LevelLayout:
    """One pyramid level: its array shape, chunk and shard edges, and physical placement.

    ``translation`` is where the centre of voxel 0 lies in level-0 physical units: a mean over
    2^L samples is centred (2^L - 1) / 2 samples in, so levels overlay exactly in a viewer.
    """

    path: str
    shape: tuple[int, ...]
    chunk: tuple[int, ...]
    shard: tuple[int, ...] | None
    scale: tuple[float, ...]
    translation: tuple[float, ...]


def level_count(shape: tuple[int, ...], chunk: int) -> int:
    """Levels until the coarsest fits in one chunk: 1 + max ceil(log2(n / chunk))."""
    return 1 + max(max(0, math.ceil(math.log2(n / chunk))) for n in shape)


def plan_levels(
    shape: tuple[int, ...], voxel_size_um: tuple[float, ...], config: ZarrConfig
) -> tuple[LevelLayout, ...]:
    """Every level of a pyramid for ``shape``, chunk and shard edges clipped to each level."""
    if len(shape) != len(voxel_size_um):
        raise ValueError(f"shape {shape} and voxel size {voxel_size_um} differ in length")
    if any(n < 1 for n in shape) or any(v <= 0 for v in voxel_size_um):
        raise ValueError(f"shape {shape} and voxel size {voxel_size_um} must be positive")
    count = config.levels or level_count(shape, config.chunk)
    levels: list[LevelLayout] = []
    level_shape = tuple(int(n) for n in shape)
    factor = np.ones(len(shape))
    for index in range(count):
        if index:
            factor = factor * np.array([2.0 if n > 1 else 1.0 for n in level_shape])
            level_shape = pooled_shape(level_shape)
        chunk = tuple(min(config.chunk, n) for n in level_shape)
        shard = _shard(level_shape, chunk, config.shard, factor)
        levels.append(
            LevelLayout(
                path=str(index),
                shape=level_shape,
                chunk=chunk,
                shard=shard,
                scale=tuple(float(v * f) for v, f in zip(voxel_size_um, factor, strict=True)),
                translation=tuple(
                    float(v * (f - 1) / 2) for v, f in zip(voxel_size_um, factor, strict=True)
                ),
            )
        )
    return tuple(levels)


def _shard(
    shape: tuple[int, ...], chunk: tuple[int, ...], shard: int | None, factor: np.ndarray
) -> tuple[int, ...] | None:
    """Shards shrink with the pooling factor, so one level-0 shard covers exactly one shard on
    every coarser level: a shard-aligned write never read-modify-writes a coarse shard. Whole
    chunks only, no larger than the level; None when a shard would hold a single chunk."""
    if shard is None:
        return None
    edges = tuple(
        c * min(max(1, int(shard // f) // c), math.ceil(n / c))
        for n, c, f in zip(shape, chunk, factor, strict=True)
    )
    return None if edges == chunk else edges


def _codecs(config: ZarrConfig, itemsize: int) -> list[dict[str, Any]]:
    codecs: list[dict[str, Any]] = [{"name": "bytes", "configuration": {"endian": "little"}}]
    if config.codec is not Codec.NONE:
        codecs.append(
            {
                "name": "blosc",
                "configuration": {
                    "cname": str(config.codec),
                    "clevel": config.clevel,
                    "shuffle": "shuffle" if itemsize > 1 else "noshuffle",
                    "typesize": itemsize,
                    "blocksize": 0,
                },
            }
        )
    return codecs


def array_metadata(
    level: LevelLayout,
    dtype: np.dtype,
    axes: tuple[str, ...],
    config: ZarrConfig,
    fill_value: float | int,
) -> dict[str, Any]:
    """zarr v3 array metadata for tensorstore's ``zarr3`` driver."""
    codecs = _codecs(config, dtype.itemsize)
    if level.shard is not None:
        codecs = [
            {
                "name": "sharding_indexed",
                "configuration": {
                    "chunk_shape": list(level.chunk),
                    "codecs": codecs,
                    "index_codecs": [
                        {"name": "bytes", "configuration": {"endian": "little"}},
                        {"name": "crc32c"},
                    ],
                },
            }
        ]
    grid = level.shard or level.chunk
    return {
        "shape": list(level.shape),
        "data_type": dtype.name,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(grid)}},
        "chunk_key_encoding": {"name": "default"},
        "fill_value": _json_fill(fill_value),
        "codecs": codecs,
        "dimension_names": list(axes),
    }


def _json_fill(value: float | int) -> float | int | str:
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    return value


def ome_attributes(
    levels: tuple[LevelLayout, ...],
    axes: tuple[str, ...],
    *,
    name: str,
    reduction: Reduction,
    window: tuple[float, float] | None,
    color: str,
) -> dict[str, Any]:
    """The group's ``ome`` attributes: multiscales (axes in µm, scale per level), omero."""
    datasets = []
    for level in levels:
        transforms: list[dict[str, Any]] = [{"type": "scale", "scale": list(level.scale)}]
        if any(level.translation):
            transforms.append({"type": "translation", "translation": list(level.translation)})
        datasets.append({"path": level.path, "coordinateTransformations": transforms})
    attributes: dict[str, Any] = {
        "version": OME_VERSION,
        "multiscales": [
            {
                "name": name,
                "axes": [{"name": a, "type": "space", "unit": UNIT} for a in axes],
                "datasets": datasets,
                "type": f"2x {reduction}",
            }
        ],
    }
    if window is not None:
        start, end = (float(v) for v in window)
        attributes["omero"] = {
            "channels": [
                {
                    "label": name,
                    "color": color,
                    "active": True,
                    "window": {"start": start, "end": end, "min": start, "max": end},
                }
            ],
            "rdefs": {"model": "greyscale" if color.upper() == "FFFFFF" else "color"},
        }
    return attributes


def writer_attributes(
    *, complete: bool, reduction: Reduction, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Our own block beside ``ome``: the completion marker, how levels were pooled, and what a
    writer adds (e.g. the quantisation of a per-tile volume)."""
    return {"complete": complete, "reduction": str(reduction), **(extra or {})}
