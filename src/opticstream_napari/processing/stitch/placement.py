"""Place the tiles of one grid: register neighbours on their overlaps, then solve globally.

Tiles are visited row by row and only their overlap strips are kept: the right strip of the
previous tile and the bottom strips of the previous row. A 20 × 20 grid of 2048² tiles at 10 %
overlap therefore holds ~35 MB of strips however many tiles there are, and tiles can come from
a loader one at a time.

Positions are ``(y, x)`` pixels of each tile's first sample, in the stage frame (tile ``(0, 0)``
of the nominal lattice at the origin, the anchor tile kept at its nominal position); ``y``
follows grid rows and ``x`` grid columns. Arrays are indexed ``[y, x]``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from opticstream_napari.layout import Grid
from opticstream_napari.processing.stitch.global_solve import (
    Link,
    LinkResult,
    TileStatus,
    solve_positions,
)
from opticstream_napari.processing.stitch.lattice import tiles_by_cell
from opticstream_napari.processing.stitch.pairwise import correlator_for

TileSource = Mapping[int, np.ndarray] | Callable[[int], np.ndarray | None]
"""Tiles by 1-based grid index: a mapping, or a loader returning None for a missing tile."""


class TileShapeError(ValueError):
    """A tile that is not 2D or not the shape of the others."""


@dataclass(frozen=True)
class Placement:
    """Where every tile of a grid goes, how that was found, and the evidence.

    ``status``: registered, fallback (no reliable link: stage model relative to neighbours)
    or missing (no data; placed like a fallback so the gap sits where it belongs).
    ``signal``: mean of each loaded tile (empty when not measured), for lattice reliability.
    """

    grid: Grid
    tile_shape: tuple[int, int]
    overlap: tuple[int, int]
    nominal: dict[int, tuple[float, float]]
    positions: dict[int, tuple[float, float]]
    status: dict[int, TileStatus]
    links: tuple[LinkResult, ...]
    signal: dict[int, float]

    @property
    def nominal_step(self) -> tuple[float, float]:
        """Stage ``(step_y, step_x)`` between neighbouring tiles."""
        h, w = self.tile_shape
        return float(h - self.overlap[0]), float(w - self.overlap[1])

    def tiles_with(self, status: TileStatus) -> list[int]:
        return [t for t, s in self.status.items() if s is status]


def place_tiles(
    tiles: TileSource,
    grid: Grid,
    overlap_fraction: float | tuple[float, float],
    *,
    tile_shape: tuple[int, int] | None = None,
    min_confidence: float = 0.3,
    max_residual: float = 1.0,
    max_shift: float | None = None,
    anchor: int | None = None,
    measure_signal: bool = True,
) -> Placement:
    """Register every adjacent pair on its nominal overlap and solve all positions at once.

    ``overlap_fraction``: nominal overlap as a fraction of the tile (one value, or
    ``(along y, along x)``); the config's ``tile_overlap`` percent divided by 100.
    ``tile_shape``: expected ``(h, w)``; by default the first loaded tile's.
    ``min_confidence``: links with a lower NCC are not used; ``max_residual`` (px): links the
    global solution disagrees with by more are rejected as outliers.
    ``max_shift`` (px): largest deviation from the stage model a pair may report.
    ``anchor``: tile kept at its nominal position (default: the first present tile).
    ``measure_signal``: also record each tile's mean (reads whole tiles; turn off to read
    only the overlaps of lazily loaded arrays).
    """
    fy, fx = (overlap_fraction, overlap_fraction) if np.isscalar(overlap_fraction) else overlap_fraction
    if not (0 < fy < 1 and 0 < fx < 1):
        raise ValueError(f"overlap fractions must be in (0, 1), found {overlap_fraction}")
    bound = None if max_shift is None else (float(max_shift), float(max_shift))
    shape = None if tile_shape is None else (int(tile_shape[0]), int(tile_shape[1]))
    found = _register_neighbours(_reader(tiles), grid, (fy, fx), shape, bound, measure_signal)
    if not found.present or found.shape is None:
        raise ValueError(f"none of the {grid.tile_count} tiles of the grid could be loaded")
    at = tiles_by_cell(grid)
    step = (found.shape[0] - found.overlap[0], found.shape[1] - found.overlap[1])
    nominal = {t: (float(r * step[0]), float(c * step[1]))
               for (r, c), t in sorted(at.items(), key=lambda item: item[1])}
    adjacency = [(at[r, c], at[r + dr, c + dc])
                 for (r, c) in at for dr, dc in ((0, 1), (1, 0))
                 if (r + dr, c + dc) in at]
    solution = solve_positions(
        nominal, found.links, adjacency, min_confidence=min_confidence,
        max_residual=max_residual, anchor=min(found.present) if anchor is None else anchor,
    )
    return Placement(
        grid=grid,
        tile_shape=found.shape,
        overlap=found.overlap,
        nominal=nominal,
        positions=solution.positions,
        status={t: s if t in found.present else TileStatus.MISSING
                for t, s in solution.status.items()},
        links=solution.links,
        signal=found.signal,
    )


@dataclass
class _Neighbours:
    """What one pass over the grid found: tile shape, overlap, present tiles, links, means."""

    shape: tuple[int, int] | None
    overlap: tuple[int, int] = (0, 0)
    present: set[int] = field(default_factory=set)
    links: list[Link] = field(default_factory=list)
    signal: dict[int, float] = field(default_factory=dict)


def _register_neighbours(
    read: Callable[[int], np.ndarray | None],
    grid: Grid,
    fraction: tuple[float, float],
    shape: tuple[int, int] | None,
    bound: tuple[float, float] | None,
    measure_signal: bool,
) -> _Neighbours:
    """Visit the grid row by row, registering each tile with its left and upper neighbours.

    Only strips are kept between tiles: the right strip of the tile to the left and the bottom
    strip of each tile of the previous row.
    """
    at = tiles_by_cell(grid)
    found = _Neighbours(shape)
    above: dict[int, np.ndarray] = {}
    for row in range(grid.rows):
        left: np.ndarray | None = None
        for col in range(grid.columns):
            tile = at[row, col]
            data = read(tile)
            if data is None:
                above.pop(col, None)
                left = None
                continue
            data = np.asarray(data) if measure_signal else data
            found.shape = _check_shape(tile, data, found.shape)
            h, w = found.shape
            if not found.present:
                found.overlap = _overlap_pixels(found.shape, *fraction)
            found.present.add(tile)
            oy, ox = found.overlap
            if measure_signal:
                found.signal[tile] = _mean(data)
            if left is not None:
                shift = correlator_for(left.shape, max_shift=bound).register(
                    left, _strip(data, np.s_[:, :ox])
                )
                found.links.append(
                    Link(at[row, col - 1], tile, (shift.dy, w - ox + shift.dx), shift.ncc)
                )
            if col in above:
                shift = correlator_for(above[col].shape, max_shift=bound).register(
                    above[col], _strip(data, np.s_[:oy, :])
                )
                found.links.append(
                    Link(at[row - 1, col], tile, (h - oy + shift.dy, shift.dx), shift.ncc)
                )
            left = _strip(data, np.s_[:, w - ox:]) if col + 1 < grid.columns else None
            if row + 1 < grid.rows:
                above[col] = _strip(data, np.s_[h - oy:, :])
            else:
                above.pop(col, None)
    return found


def _reader(tiles: TileSource) -> Callable[[int], np.ndarray | None]:
    """A loader that answers None for a missing tile, whatever form ``tiles`` takes."""
    if isinstance(tiles, Mapping):
        return tiles.get

    def read(tile: int) -> np.ndarray | None:
        try:
            return tiles(tile)
        except (FileNotFoundError, KeyError):
            return None

    return read


def _check_shape(
    tile: int, data: np.ndarray, shape: tuple[int, int] | None
) -> tuple[int, int]:
    if data.ndim != 2:
        raise TileShapeError(f"tile {tile} is {data.ndim}D with shape {data.shape}; tiles are 2D")
    if shape is not None and tuple(data.shape) != shape:
        raise TileShapeError(
            f"tile {tile} has shape {tuple(data.shape)}, the other tiles {shape}"
        )
    return int(data.shape[0]), int(data.shape[1])


def _overlap_pixels(shape: tuple[int, int], fy: float, fx: float) -> tuple[int, int]:
    oy, ox = round(fy * shape[0]), round(fx * shape[1])
    if min(oy, ox) < 8:
        raise ValueError(
            f"a {fy:.0%} × {fx:.0%} overlap of {shape} tiles is {oy} × {ox} pixels; "
            "registration needs at least 8"
        )
    return oy, ox


def _strip(data: np.ndarray, region: tuple[slice, slice]) -> np.ndarray:
    """A float32 copy of an overlap strip, so the tile itself can be freed."""
    return np.array(data[region], dtype=np.float32, copy=True, order="C")


def _mean(data: np.ndarray) -> float:
    mean = float(np.mean(data, dtype=np.float64))
    return mean if np.isfinite(mean) else float(np.nanmean(data, dtype=np.float64))
