import pytest

from opticstream_napari import layout
from opticstream_napari.layout import Grid, GridOrder, HorizontalStart, VerticalStart


def test_snake_by_columns_up_and_right_is_the_instrument_default() -> None:
    grid = Grid(columns=2, rows=3)
    assert [grid.position(t) for t in range(1, 7)] == [(2, 0), (1, 0), (0, 0), (0, 1), (1, 1), (2, 1)]


@pytest.mark.parametrize("order", list(GridOrder))
@pytest.mark.parametrize("horizontal", list(HorizontalStart))
@pytest.mark.parametrize("vertical", list(VerticalStart))
def test_every_traversal_visits_each_cell_once(order, horizontal, vertical) -> None:
    grid = Grid(3, 4, order, horizontal, vertical)
    cells = [grid.position(t) for t in range(1, grid.tile_count + 1)]
    assert sorted(cells) == [(r, c) for r in range(4) for c in range(3)]
    assert all(grid.tile_at(*grid.position(t)) == t for t in range(1, 13))
    first_row = 3 if vertical is VerticalStart.UP else 0
    first_col = 0 if horizontal is HorizontalStart.RIGHT else 2
    assert cells[0] == (first_row, first_col)


def test_row_orders() -> None:
    assert [Grid(3, 2, GridOrder.ROW_BY_ROW, vertical=VerticalStart.DOWN).position(t) for t in (1, 3, 4)] == [
        (0, 0), (0, 2), (1, 0)]
    assert [Grid(3, 2, GridOrder.SNAKE_BY_ROWS, vertical=VerticalStart.DOWN).position(t) for t in (3, 4)] == [
        (0, 2), (1, 2)]


def test_grid_bounds() -> None:
    with pytest.raises(ValueError, match="outside"):
        Grid(2, 2).position(5)
    with pytest.raises(ValueError, match="1×1"):
        Grid(0, 2)


def test_mosaic_arithmetic() -> None:
    assert layout.slice_of_mosaic(3, 2) == 2 and layout.slice_of_mosaic(4, 2) == 2
    assert layout.first_mosaic_of_slice(3, 2) == 5
    assert layout.mosaics_of_slice(2, 3) == [4, 5, 6]
    assert layout.mosaic_role(2, 2).acquisition == "tilted" and layout.mosaic_role(2, 2).bucket == "tilted"
    roles = [layout.mosaic_role(m, 3) for m in (4, 5, 6)]
    assert [r.acquisition for r in roles] == ["normal", "tiltPos", "tiltNeg"]
    assert {r.bucket for r in roles} == {"normal"}
    assert layout.shift_mosaic(3, 1, 2) == 5
    with pytest.raises(ValueError, match="before slice 1"):
        layout.shift_mosaic(1, -1, 2)
    with pytest.raises(ValueError, match="2 or 3"):
        layout.mosaic_role(1, 4)


def test_batches_and_strips() -> None:
    assert layout.batch_of_tile(1, 3) == 1 and layout.batch_of_tile(4, 3) == 2
    assert layout.tiles_of_batch(2, 3) == [4, 5, 6]
    assert layout.split_global_strip_index(6, 5) == (2, 1)
    assert layout.split_global_strip_index(5, 5) == (1, 5)
