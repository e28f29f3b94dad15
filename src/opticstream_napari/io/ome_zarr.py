"""Incremental multiscale OME-Zarr 0.5 (zarr v3) writer on tensorstore.

A pyramid is preallocated with every level (:func:`create_pyramid`); regions are then written
into level 0 and propagated to every coarser level (:meth:`OmeZarrPyramid.write_region`), so a
viewer can show a mosaic while it grows and the finished pyramid equals one built in a single
pass. Each coarser region is recomputed from the level below, aligned to the 2× pooling grid;
when the aligned region reaches beyond what the caller just wrote, it is read back from the
store, so tiles may arrive in any order.

Completion: the group's ``zarr.json`` carries ``attributes.opticstream.complete``. It is false
from creation until :meth:`OmeZarrPyramid.mark_complete`, so a crash mid-way leaves a store
that :func:`is_complete` rejects (a live mosaic must be readable at its final path while it
grows, which a rename-at-the-end scheme would forbid). :func:`write_pyramid` also writes under
a hidden temporary name and renames, so a whole-array output appears only when finished.

Concurrency: writes from several threads of one process are safe, for disjoint or even
overlapping regions (later writes win consistently across levels). Regions are serialised
per level only where their pooled footprints overlap, hand over hand from level to level, so
no thread can overtake another and leave a stale coarse level. Live previews should be
unsharded (``ZarrConfig(shard=None)``): a partial write into a shard rewrites the whole shard.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import tensorstore as ts
from numpy.typing import DTypeLike

from opticstream_napari.config.zarr import ZarrConfig
from opticstream_napari.host import available_memory, usable_cores
from opticstream_napari.io.atomic import atomic_path, atomic_write_text, is_temporary
from opticstream_napari.io.downsample import Reduction, pool2
from opticstream_napari.io.ome_zarr_layout import (
    AXES_2D,
    AXES_3D,
    LevelLayout,
    array_metadata,
    ome_attributes,
    plan_levels,
    writer_attributes,
)
from opticstream_napari.io.output import OutputError, ensure_output_dir

WRITER_KEY = "opticstream"
_UNIT_BYTES = 32 << 20
# A write unit in flight holds about this many copies of itself: the parts it is made from,
# the unit, tensorstore's copy and the encoded shard, and the next unit's parts.
UNITS_PER_WORKER = 5

Box = tuple[tuple[int, ...], tuple[int, ...]]
Region = Sequence[slice]


@dataclass(frozen=True, slots=True)
class RegionWritten:
    """Where one write landed on one level: small enough to send to the GUI thread."""

    level: int
    start: tuple[int, ...]
    stop: tuple[int, ...]

    @property
    def slices(self) -> tuple[slice, ...]:
        return tuple(slice(a, b) for a, b in zip(self.start, self.stop, strict=True))


class _Sliceable(Protocol):
    shape: tuple[int, ...]

    def __getitem__(self, key: tuple[slice, ...]) -> Any: ...


class _RegionLocks:
    """Per-level locks on boxes: a thread waits only for holders whose boxes overlap its own."""

    def __init__(self, levels: int) -> None:
        self._held: list[list[Box]] = [[] for _ in range(levels)]
        self._changed = threading.Condition()

    def acquire(self, level: int, box: Box) -> None:
        with self._changed:
            while any(_overlaps(box, other) for other in self._held[level]):
                self._changed.wait()
            self._held[level].append(box)

    def release(self, level: int, box: Box) -> None:
        with self._changed:
            self._held[level].remove(box)
            self._changed.notify_all()


def _overlaps(a: Box, b: Box) -> bool:
    return all(s1 < e2 and s2 < e1 for s1, e1, s2, e2 in zip(a[0], a[1], b[0], b[1], strict=True))


class OmeZarrPyramid:
    """An open pyramid: write regions into every level, read any level back."""

    def __init__(
        self,
        path: Path,
        levels: tuple[LevelLayout, ...],
        arrays: list[ts.TensorStore],
        reduction: Reduction,
    ) -> None:
        self.path = path
        self.levels = levels
        self.reduction = reduction
        self._arrays = arrays
        self._locks = _RegionLocks(len(levels))

    @property
    def shape(self) -> tuple[int, ...]:
        return self.levels[0].shape

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self._arrays[0].dtype.numpy_dtype)

    def write_region(self, region: Region, data: np.ndarray) -> tuple[RegionWritten, ...]:
        """Write ``data`` at ``region`` of level 0 and recompute the region on every level.

        Returns one :class:`RegionWritten` per level, finest first.
        """
        box = _normalize(region, self.shape)
        data = np.asarray(data)
        expected = tuple(b - a for a, b in zip(*box, strict=True))
        if data.shape != expected:
            raise ValueError(f"data of shape {data.shape} does not fit region {expected}")
        if not np.can_cast(data.dtype, self.dtype, "same_kind"):
            raise TypeError(f"cannot store {data.dtype} data in a {self.dtype} pyramid")
        data = data.astype(self.dtype, copy=False)
        written = [RegionWritten(0, *box)]
        held = (0, box)
        self._locks.acquire(*held)
        try:
            self._write(0, box, data)
            for level in range(1, len(self.levels)):
                aligned = _align(box, self.levels[level - 1].shape)
                pooled = (
                    tuple(a // 2 for a in aligned[0]),
                    tuple((b + 1) // 2 for b in aligned[1]),
                )
                self._locks.acquire(level, pooled)
                self._locks.release(*held)
                held = (level, pooled)
                source = data if aligned == box else self._read(level - 1, aligned)
                data = pool2(source, self.reduction)
                self._write(level, pooled, data)
                written.append(RegionWritten(level, *pooled))
                box = pooled
        finally:
            self._locks.release(*held)
        return tuple(written)

    def read(self, level: int = 0, region: Region | None = None) -> np.ndarray:
        shape = self.levels[level].shape
        box = _normalize(region, shape) if region is not None else (
            (0,) * len(shape), shape)
        return self._read(level, box)

    def write_units(self, region: Region | None = None) -> list[tuple[slice, ...]]:
        """Level-0 boxes that tile the array (or cover ``region``) on whole shards or chunks.

        Writing by these units never splits a shard between writes and keeps every box aligned
        to the pooling grid for as many levels as the unit is a power of two.
        """
        unit = self._unit()
        start, stop = (
            _normalize(region, self.shape) if region is not None
            else ((0,) * len(self.shape), self.shape)
        )
        ranges = [
            range((a // u) * u, b, u) for a, b, u in zip(start, stop, unit, strict=True)
        ]
        boxes = []
        for corner in np.ndindex(*(len(r) for r in ranges)):
            lo = [r[i] for r, i in zip(ranges, corner, strict=True)]
            boxes.append(
                tuple(
                    slice(a, min(a + u, n)) for a, u, n in zip(lo, unit, self.shape, strict=True)
                )
            )
        return boxes

    def mark_complete(self) -> None:
        """Flag the store as finished; :func:`is_complete` is false until this is called."""
        _update_writer_attributes(self.path, complete=True)

    def unit_bytes(self) -> int:
        """Bytes of one level-0 write unit (a shard, or a few chunks)."""
        return int(np.prod(self._unit())) * self.dtype.itemsize

    def _unit(self) -> tuple[int, ...]:
        level = self.levels[0]
        if level.shard is not None:
            return level.shard
        unit = list(level.chunk)
        itemsize = self.dtype.itemsize
        while int(np.prod(unit)) * itemsize * 2 <= _UNIT_BYTES:
            growable = [i for i, (u, n) in enumerate(zip(unit, level.shape, strict=True)) if u < n]
            if not growable:
                break
            for i in growable:
                unit[i] *= 2
        return tuple(unit)

    def _write(self, level: int, box: Box, data: np.ndarray) -> None:
        self._arrays[level][_slices(box)].write(data).result()

    def _read(self, level: int, box: Box) -> np.ndarray:
        return self._arrays[level][_slices(box)].read().result()


def _slices(box: Box) -> tuple[slice, ...]:
    return tuple(slice(a, b) for a, b in zip(*box, strict=True))


def _align(box: Box, shape: tuple[int, ...]) -> Box:
    """Grow ``box`` outwards to the 2× pooling grid, clipped to the array."""
    return (
        tuple(a - a % 2 for a in box[0]),
        tuple(min(b + b % 2, n) for b, n in zip(box[1], shape, strict=True)),
    )


def _normalize(region: Region, shape: tuple[int, ...]) -> Box:
    if len(region) != len(shape):
        raise ValueError(f"region {region} has {len(region)} axes, the array {len(shape)}")
    start, stop = [], []
    for axis, (item, n) in enumerate(zip(region, shape, strict=True)):
        if not isinstance(item, slice) or item.step not in (None, 1):
            raise ValueError(f"region axis {axis} must be a contiguous slice, found {item!r}")
        a = 0 if item.start is None else int(item.start)
        b = n if item.stop is None else int(item.stop)
        if not 0 <= a < b <= n:
            raise ValueError(f"region axis {axis} [{a}, {b}) is empty or outside [0, {n})")
        start.append(a)
        stop.append(b)
    return tuple(start), tuple(stop)


def _default_axes(ndim: int) -> tuple[str, ...]:
    if ndim == 2:
        return AXES_2D
    if ndim == 3:
        return AXES_3D
    raise ValueError(f"OME-Zarr mosaics are 2D (y, x) or 3D (z, y, x), found {ndim} axes")


def create_pyramid(
    path: str | os.PathLike[str],
    shape: Sequence[int],
    dtype: DTypeLike,
    voxel_size_um: Sequence[float],
    axes: Sequence[str] | None = None,
    zarr_config: ZarrConfig | None = None,
    *,
    fill_value: float | None = None,
    name: str | None = None,
    window: tuple[float, float] | None = None,
    color: str = "FFFFFF",
    reduction: Reduction = Reduction.MEAN,
    overwrite: bool = False,
    writer_extra: dict[str, Any] | None = None,
) -> OmeZarrPyramid:
    """Preallocate every level of an OME-Zarr 0.5 pyramid and write its metadata.

    ``shape``, ``voxel_size_um`` and ``axes`` follow array order, ``('z', 'y', 'x')`` or
    ``('y', 'x')``. Unwritten voxels read as ``fill_value`` (NaN for floats, 0 for integers),
    so a viewer shows gaps, not zeros. ``window`` and ``color`` fill the omero display hints.
    The store stays incomplete until :meth:`OmeZarrPyramid.mark_complete`. ``writer_extra``
    joins our block of group attributes (:func:`writer_attributes`).
    """
    path = Path(path)
    dtype = np.dtype(dtype)
    shape = tuple(int(n) for n in shape)
    axes = tuple(axes) if axes is not None else _default_axes(len(shape))
    if len(axes) != len(shape) or set(axes) - set(AXES_3D):
        raise ValueError(f"axes {axes} must name each of the {len(shape)} axes from z, y, x")
    config = zarr_config or ZarrConfig()
    if fill_value is None:
        fill_value = float("nan") if np.issubdtype(dtype, np.floating) else 0
    levels = plan_levels(shape, tuple(float(v) for v in voxel_size_um), config)
    _prepare_folder(path, overwrite)
    label = name or path.name.removesuffix(".zarr").removesuffix(".ome")
    group = {
        "zarr_format": 3,
        "node_type": "group",
        "attributes": {
            "ome": ome_attributes(
                levels, axes, name=label, reduction=reduction, window=window, color=color
            ),
            WRITER_KEY: writer_attributes(complete=False, reduction=reduction, extra=writer_extra),
        },
    }
    try:
        atomic_write_text(path / "zarr.json", json.dumps(group, indent=2))
        arrays = [
            ts.open(
                {
                    "driver": "zarr3",
                    "kvstore": {"driver": "file", "path": str(path / level.path)},
                    "metadata": array_metadata(level, dtype, axes, config, fill_value),
                },
                create=True,
                delete_existing=True,
            ).result()
            for level in levels
        ]
    except (OSError, ValueError) as exc:
        raise OutputError(f"cannot create the OME-Zarr store {path}: {exc}") from exc
    return OmeZarrPyramid(path, levels, arrays, reduction)


def _prepare_folder(path: Path, overwrite: bool) -> None:
    ensure_output_dir(path.parent)
    if path.exists():
        if not overwrite:
            raise FileExistsError(f"{path} exists and overwrite is off")
        if not (path / "zarr.json").is_file() and any(path.iterdir()):
            raise OutputError(f"refusing to replace {path}: it is not a zarr store")
        shutil.rmtree(path)
    path.mkdir()


def open_pyramid(path: str | os.PathLike[str]) -> OmeZarrPyramid:
    """Reopen a pyramid written by :func:`create_pyramid`, e.g. to go on after a restart."""
    path = Path(path)
    attributes = _group_attributes(path)
    if WRITER_KEY not in attributes:
        raise ValueError(f"{path} was not written by this writer (no '{WRITER_KEY}' attributes)")
    datasets = attributes["ome"]["multiscales"][0]["datasets"]
    arrays, levels = [], []
    for dataset in datasets:
        array = ts.open(
            {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(path / dataset["path"])}},
            open=True,
        ).result()
        arrays.append(array)
        levels.append(_level_from_metadata(dataset, path / dataset["path"] / "zarr.json"))
    reduction = Reduction(attributes[WRITER_KEY]["reduction"])
    return OmeZarrPyramid(path, tuple(levels), arrays, reduction)


def _level_from_metadata(dataset: dict[str, Any], array_json: Path) -> LevelLayout:
    meta = json.loads(array_json.read_text())
    grid = tuple(meta["chunk_grid"]["configuration"]["chunk_shape"])
    codec = meta["codecs"][0]
    sharded = codec["name"] == "sharding_indexed"
    transforms = {t["type"]: t for t in dataset["coordinateTransformations"]}
    scale = tuple(transforms["scale"]["scale"])
    translation = tuple(transforms.get("translation", {"translation": [0.0] * len(scale)})[
        "translation"])
    return LevelLayout(
        path=dataset["path"],
        shape=tuple(meta["shape"]),
        chunk=tuple(codec["configuration"]["chunk_shape"]) if sharded else grid,
        shard=grid if sharded else None,
        scale=scale,
        translation=translation,
    )


def _group_attributes(path: Path) -> dict[str, Any]:
    return json.loads((path / "zarr.json").read_text()).get("attributes", {})


def writer_block(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Our block of a store's group attributes (:func:`writer_attributes`); empty if absent."""
    return dict(_group_attributes(Path(path)).get(WRITER_KEY, {}))


def _update_writer_attributes(path: Path, *, complete: bool) -> None:
    group = json.loads((path / "zarr.json").read_text())
    group["attributes"][WRITER_KEY]["complete"] = complete
    atomic_write_text(path / "zarr.json", json.dumps(group, indent=2))


def is_complete(path: str | os.PathLike[str]) -> bool:
    """True only for a finished store: marked complete, every level present, final name."""
    path = Path(path)
    if is_temporary(path):
        return False
    try:
        attributes = _group_attributes(path)
        datasets = attributes["ome"]["multiscales"][0]["datasets"]
        complete = attributes[WRITER_KEY]["complete"] is True
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return False
    return complete and all((path / d["path"] / "zarr.json").is_file() for d in datasets)


def fill_pyramid(
    pyramid: OmeZarrPyramid,
    produce: Callable[[tuple[slice, ...]], np.ndarray],
    regions: Iterable[tuple[slice, ...]] | None = None,
    *,
    workers: int = 2,
    on_written: Callable[[tuple[RegionWritten, ...]], None] | None = None,
) -> None:
    """Write ``produce(region)`` for every region (default: all write units) with a few threads.

    At most ``workers`` regions are in flight, so memory stays at a few units whatever the
    array size. ``on_written`` receives each region's per-level footprint, in completion order.
    """
    todo = list(pyramid.write_units() if regions is None else regions)

    def job(region: tuple[slice, ...]) -> tuple[RegionWritten, ...]:
        return pyramid.write_region(region, produce(region))

    if workers <= 1:
        for region in todo:
            _report(job(region), on_written)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ome-zarr") as pool:
        pending: deque[Future[tuple[RegionWritten, ...]]] = deque()
        for region in todo:
            if len(pending) >= workers:
                _report(pending.popleft().result(), on_written)
            pending.append(pool.submit(job, region))
        while pending:
            _report(pending.popleft().result(), on_written)


def _report(
    written: tuple[RegionWritten, ...],
    on_written: Callable[[tuple[RegionWritten, ...]], None] | None,
) -> None:
    if on_written is not None:
        on_written(written)


def write_pyramid(
    path: str | os.PathLike[str],
    array: _Sliceable,
    voxel_size_um: Sequence[float],
    axes: Sequence[str] | None = None,
    zarr_config: ZarrConfig | None = None,
    *,
    workers: int | None = 2,
    cores: int | None = None,
    overwrite: bool = False,
    **metadata: Any,
) -> Path:
    """Write a whole array (numpy, memmap, anything sliceable) as a finished pyramid.

    The array is streamed in write units (a shard, or a few chunks), ``workers`` at a time
    (None: :func:`affordable_workers` on ``cores``, by default every core this process may use:
    a task of an executor passes its share), so only a few units are ever in memory. The store is
    built under a hidden temporary name and renamed into place. ``metadata`` goes to
    :func:`create_pyramid` (``name``, ``window``, ``color``, ...).
    """
    final = Path(path)
    ensure_output_dir(final.parent)
    if final.exists() and not overwrite:
        raise FileExistsError(f"{final} exists and overwrite is off")
    metadata.setdefault("name", final.name.removesuffix(".zarr").removesuffix(".ome"))
    dtype = np.dtype(getattr(array, "dtype", np.float32))
    with atomic_path(final, overwrite=overwrite) as tmp:
        pyramid = create_pyramid(
            tmp, array.shape, dtype, voxel_size_um, axes, zarr_config, **metadata
        )
        if workers is None:
            workers = affordable_workers(pyramid.unit_bytes(), cores=cores)
        fill_pyramid(pyramid, lambda region: np.asarray(array[region]), workers=workers)
        pyramid.mark_complete()
    return final


def affordable_workers(unit_bytes: int, available: int | None = None, cores: int | None = None) -> int:
    """Write units to keep in flight: one per core, as long as their working sets
    (:data:`UNITS_PER_WORKER` units each) fit in half the memory available now. The other half
    is left to the processes working beside this one (another mosaic's step, the viewer)."""
    available = available_memory() if available is None else available
    cores = usable_cores() if cores is None else cores
    return max(1, min(cores, available // 2 // (UNITS_PER_WORKER * max(unit_bytes, 1))))
