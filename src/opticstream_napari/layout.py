"""Acquisition layout arithmetic: mosaics within a slice, tiles within a grid.

Kept apart from naming because stitching and the simulator need the grid without any names.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class GridOrder(StrEnum):
    ROW_BY_ROW = "row_by_row"
    COLUMN_BY_COLUMN = "column_by_column"
    SNAKE_BY_ROWS = "snake_by_rows"
    SNAKE_BY_COLUMNS = "snake_by_columns"


class HorizontalStart(StrEnum):
    """Which way columns advance: 'right' starts at the left edge."""

    RIGHT = "right"
    LEFT = "left"


class VerticalStart(StrEnum):
    """Which way rows advance: 'up' starts at the bottom edge (Fiji's 'Up')."""

    UP = "up"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class Grid:
    """A tile grid: ``columns`` × ``rows`` tiles visited in ``order``."""

    columns: int
    rows: int
    order: GridOrder = GridOrder.SNAKE_BY_COLUMNS
    horizontal: HorizontalStart = HorizontalStart.RIGHT
    vertical: VerticalStart = VerticalStart.UP

    def __post_init__(self) -> None:
        if self.columns < 1 or self.rows < 1:
            raise ValueError(f"a grid needs at least 1×1 tiles, found {self.columns}×{self.rows}")

    @property
    def tile_count(self) -> int:
        return self.columns * self.rows

    def position(self, tile: int) -> tuple[int, int]:
        """(row, column) of a 1-based tile index; row 0 is the top, column 0 the left."""
        if not 1 <= tile <= self.tile_count:
            raise ValueError(f"tile {tile} is outside a grid of {self.tile_count} tiles")
        k = tile - 1
        by_columns = self.order in (GridOrder.COLUMN_BY_COLUMN, GridOrder.SNAKE_BY_COLUMNS)
        snake = self.order in (GridOrder.SNAKE_BY_ROWS, GridOrder.SNAKE_BY_COLUMNS)
        if by_columns:
            outer, inner = divmod(k, self.rows)
            inner_len = self.rows
        else:
            outer, inner = divmod(k, self.columns)
            inner_len = self.columns
        if snake and outer % 2 == 1:
            inner = inner_len - 1 - inner
        col, row = (outer, inner) if by_columns else (inner, outer)
        if self.horizontal is HorizontalStart.LEFT:
            col = self.columns - 1 - col
        if self.vertical is VerticalStart.UP:
            row = self.rows - 1 - row
        return row, col

    def tile_at(self, row: int, column: int) -> int:
        """Inverse of :meth:`position`."""
        for tile in range(1, self.tile_count + 1):
            if self.position(tile) == (row, column):
                return tile
        raise ValueError(f"no tile at row {row}, column {column} of a {self.rows}×{self.columns} grid")


@dataclass(frozen=True, slots=True)
class MosaicRole:
    """What a mosaic is within its slice."""

    position: int
    acquisition: str
    bucket: str


_ROLES = {
    2: (MosaicRole(1, "normal", "normal"), MosaicRole(2, "tilted", "tilted")),
    3: (
        MosaicRole(1, "normal", "normal"),
        MosaicRole(2, "tiltPos", "normal"),
        MosaicRole(3, "tiltNeg", "normal"),
    ),
}


def _check_mps(mosaics_per_slice: int) -> None:
    if mosaics_per_slice not in _ROLES:
        raise ValueError(f"mosaics_per_slice must be 2 or 3, found {mosaics_per_slice}")


def slice_of_mosaic(mosaic: int, mosaics_per_slice: int) -> int:
    _check_mps(mosaics_per_slice)
    if mosaic < 1:
        raise ValueError(f"mosaic ids start at 1, found {mosaic}")
    return (mosaic - 1) // mosaics_per_slice + 1


def mosaic_role(mosaic: int, mosaics_per_slice: int) -> MosaicRole:
    """Acquisition label (normal, tilted, tiltPos, tiltNeg) and config bucket of a mosaic."""
    _check_mps(mosaics_per_slice)
    if mosaic < 1:
        raise ValueError(f"mosaic ids start at 1, found {mosaic}")
    return _ROLES[mosaics_per_slice][(mosaic - 1) % mosaics_per_slice]


def first_mosaic_of_slice(slice_id: int, mosaics_per_slice: int) -> int:
    _check_mps(mosaics_per_slice)
    return mosaics_per_slice * (slice_id - 1) + 1


def mosaics_of_slice(slice_id: int, mosaics_per_slice: int) -> list[int]:
    first = first_mosaic_of_slice(slice_id, mosaics_per_slice)
    return list(range(first, first + mosaics_per_slice))


def shift_mosaic(mosaic: int, slice_offset: int, mosaics_per_slice: int) -> int:
    """Move a source mosaic by whole slices, keeping its position within the slice."""
    shifted = mosaic + slice_offset * mosaics_per_slice
    if shifted < 1:
        raise ValueError(f"slice offset {slice_offset} moves mosaic {mosaic} before slice 1")
    return shifted


def batch_of_tile(tile: int, grid_size_y: int) -> int:
    """A batch is one grid column of ``grid_size_y`` tiles."""
    if tile < 1 or grid_size_y < 1:
        raise ValueError(f"tile and grid_size_y must be >= 1, found {tile} and {grid_size_y}")
    return (tile - 1) // grid_size_y + 1


def tiles_of_batch(batch: int, grid_size_y: int) -> list[int]:
    first = (batch - 1) * grid_size_y + 1
    return list(range(first, first + grid_size_y))


def split_global_strip_index(index: int, strips_per_slice: int) -> tuple[int, int]:
    """(slice, strip) of a 1-based strip index counted across slices."""
    if index < 1 or strips_per_slice < 1:
        raise ValueError(f"index and strips_per_slice must be >= 1, found {index}, {strips_per_slice}")
    slice_id, strip = divmod(index - 1, strips_per_slice)
    return slice_id + 1, strip + 1
