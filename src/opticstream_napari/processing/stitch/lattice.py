"""The original's lattice model of tile positions (spec 4.6 step 2).

Two step vectors describe the whole grid: ``h`` from a tile to its right neighbour and ``v``
from a tile to the one below, each the component-wise median over adjacent pairs of reliable
tiles (tiles with tissue, so their registration means something). Every tile then sits at
``c·h + r·v``. The median ignores a few bad pairs, and the lattice places background tiles,
whose own registration is meaningless, where the stage put them relative to the tissue.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from opticstream_napari.layout import Grid


@dataclass(frozen=True, slots=True)
class Lattice:
    """Step vectors ``(dy, dx)`` between neighbours and how many reliable pairs gave each.

    A count of 0 means no reliable pair existed and the step is the nominal (stage) one.
    """

    horizontal: tuple[float, float]
    vertical: tuple[float, float]
    horizontal_pairs: int
    vertical_pairs: int

    def positions(self, grid: Grid) -> dict[int, tuple[float, float]]:
        """``(y, x)`` of every tile: ``c·h + r·v``, shifted so min y and min x are 0 (3 decimals)."""
        tiles = range(1, grid.tile_count + 1)
        cells = np.asarray([grid.position(t) for t in tiles], dtype=np.float64)
        raw = cells[:, 1:2] * np.asarray(self.horizontal) + cells[:, 0:1] * np.asarray(self.vertical)
        raw = np.round(raw - raw.min(axis=0), 3) + 0.0
        return {t: (float(y), float(x)) for t, (y, x) in zip(tiles, raw, strict=True)}


def fit_lattice(
    positions: Mapping[int, Sequence[float]],
    grid: Grid,
    reliable: Collection[int],
    nominal_step: tuple[float, float],
) -> Lattice:
    """Robust steps from the positions of adjacent reliable tiles (see the module docstring).

    ``positions``: ``(y, x)`` per 1-based tile (e.g. from the global solve).
    ``reliable``: tiles whose positions may be trusted (e.g. mean AIP above the mask threshold).
    ``nominal_step``: the stage's ``(step_y, step_x)``, used for a direction with no reliable
    pair (e.g. a single column, or no tissue).
    """
    trusted = {t for t in reliable if t in positions}
    at = tiles_by_cell(grid)
    horizontal: list[np.ndarray] = []
    vertical: list[np.ndarray] = []
    for tile in trusted:
        row, col = grid.position(tile)
        here = np.asarray(positions[tile], dtype=np.float64)
        if col + 1 < grid.columns and (right := at[row, col + 1]) in trusted:
            horizontal.append(np.asarray(positions[right], dtype=np.float64) - here)
        if row + 1 < grid.rows and (below := at[row + 1, col]) in trusted:
            vertical.append(np.asarray(positions[below], dtype=np.float64) - here)
    step_y, step_x = (float(s) for s in nominal_step)
    return Lattice(
        horizontal=_median(horizontal, (0.0, step_x)),
        vertical=_median(vertical, (step_y, 0.0)),
        horizontal_pairs=len(horizontal),
        vertical_pairs=len(vertical),
    )


def tiles_by_cell(grid: Grid) -> dict[tuple[int, int], int]:
    """``(row, column) -> tile`` for the whole grid at once (``Grid.tile_at`` is a scan)."""
    return {grid.position(t): t for t in range(1, grid.tile_count + 1)}


def _median(steps: list[np.ndarray], default: tuple[float, float]) -> tuple[float, float]:
    if not steps:
        return default
    y, x = np.median(np.asarray(steps), axis=0)
    return float(y), float(x)
