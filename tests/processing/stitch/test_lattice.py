import numpy as np
import pytest

from opticstream_napari.layout import Grid, GridOrder, HorizontalStart, VerticalStart
from opticstream_napari.processing.stitch.lattice import Lattice, fit_lattice, tiles_by_cell

H_STEP = (0.7, 280.25)
V_STEP = (279.5, -1.25)


def _lattice_positions(grid: Grid, noise: float, seed: int = 0) -> dict[int, tuple[float, float]]:
    rng = np.random.default_rng(seed)
    positions = {}
    for t in range(1, grid.tile_count + 1):
        r, c = grid.position(t)
        y = 40 + c * H_STEP[0] + r * V_STEP[0] + rng.normal(0, noise)
        x = 15 + c * H_STEP[1] + r * V_STEP[1] + rng.normal(0, noise)
        positions[t] = (y, x)
    return positions


@pytest.mark.parametrize(
    "grid",
    [Grid(4, 5), Grid(5, 3, GridOrder.ROW_BY_ROW, HorizontalStart.LEFT, VerticalStart.DOWN)],
)
def test_median_steps_ignore_bad_tiles_and_unreliable_ones(grid: Grid) -> None:
    positions = _lattice_positions(grid, noise=0.1)
    positions[3] = (positions[3][0] + 25.0, positions[3][1] - 40.0)
    unreliable = {5: (1e4, -1e4), 6: (0.0, 0.0)}
    positions.update(unreliable)
    reliable = [t for t in positions if t not in unreliable]
    lattice = fit_lattice(positions, grid, reliable, nominal_step=(280.0, 280.0))
    assert lattice.horizontal == pytest.approx(H_STEP, abs=0.15)
    assert lattice.vertical == pytest.approx(V_STEP, abs=0.15)
    assert 0 < lattice.horizontal_pairs < (grid.columns - 1) * grid.rows
    assert 0 < lattice.vertical_pairs < grid.columns * (grid.rows - 1)


def test_positions_are_c_h_plus_r_v_shifted_to_zero_and_rounded() -> None:
    grid = Grid(3, 2)
    lattice = Lattice((0.5, 100.12345), (99.0, -2.0), 4, 3)
    positions = lattice.positions(grid)
    assert sorted(positions) == list(range(1, 7))
    for tile, (y, x) in positions.items():
        r, c = grid.position(tile)
        assert y == pytest.approx(c * 0.5 + r * 99.0, abs=1e-9)
        assert x == pytest.approx(c * 100.12345 - r * 2.0 + 2.0, abs=1e-3)
        assert x == round(x, 3)
    assert min(y for y, _ in positions.values()) == 0.0
    assert min(x for _, x in positions.values()) == 0.0


def test_no_reliable_pair_falls_back_to_the_stage_step() -> None:
    grid = Grid(1, 3)
    positions = _lattice_positions(grid, noise=0.0)
    lattice = fit_lattice(positions, grid, reliable=[1], nominal_step=(270.0, 260.0))
    assert lattice == Lattice((0.0, 260.0), (270.0, 0.0), 0, 0)
    only_vertical = fit_lattice(positions, grid, reliable=[1, 2, 3], nominal_step=(270.0, 260.0))
    assert only_vertical.horizontal == (0.0, 260.0)
    assert only_vertical.vertical == pytest.approx(V_STEP)
    assert only_vertical.vertical_pairs == 2


def test_reliable_tiles_without_positions_are_skipped() -> None:
    grid = Grid(2, 2)
    positions = _lattice_positions(grid, noise=0.0)
    del positions[4]
    lattice = fit_lattice(positions, grid, reliable=[1, 2, 3, 4], nominal_step=(1.0, 1.0))
    assert lattice.horizontal_pairs + lattice.vertical_pairs == 2


def test_tiles_by_cell_inverts_the_grid() -> None:
    grid = Grid(3, 4, GridOrder.SNAKE_BY_ROWS, HorizontalStart.LEFT)
    cells = tiles_by_cell(grid)
    assert len(cells) == 12
    assert all(grid.tile_at(r, c) == t for (r, c), t in cells.items())
