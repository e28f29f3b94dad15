import weakref

import numpy as np
import pytest

from opticstream_napari.layout import Grid, GridOrder, HorizontalStart, VerticalStart
from opticstream_napari.processing.stitch.global_solve import LinkState, TileStatus
from opticstream_napari.processing.stitch.placement import TileShapeError, place_tiles


@pytest.fixture(scope="module")
def canvas(synthetic):
    return synthetic.TexturedCanvas(1024, seed=0)


@pytest.mark.parametrize(
    ("grid", "overlap", "shape"),
    [
        (Grid(3, 3), 0.2, (160, 160)),
        (Grid(5, 4, GridOrder.ROW_BY_ROW, vertical=VerticalStart.DOWN), 0.1, (200, 200)),
        (Grid(2, 6, GridOrder.SNAKE_BY_ROWS, HorizontalStart.LEFT), 0.3, (128, 144)),
    ],
    ids=["3x3-20%", "5x4-10%", "2x6-30%"],
)
def test_placement_error_is_below_a_fifth_of_a_pixel(synthetic, canvas, grid, overlap, shape):
    tiles, truth = synthetic.jittered_grid(canvas, grid, shape, overlap, jitter=1.5)
    placement = place_tiles(tiles, grid, overlap)
    assert synthetic.placement_rms(placement.positions, truth) <= 0.2
    assert set(placement.status.values()) == {TileStatus.REGISTERED}
    assert placement.tile_shape == shape
    assert placement.overlap == (round(overlap * shape[0]), round(overlap * shape[1]))
    anchor = min(tiles)
    assert placement.positions[anchor] == pytest.approx(placement.nominal[anchor])
    assert len(placement.links) == (grid.columns - 1) * grid.rows + grid.columns * (grid.rows - 1)
    assert placement.signal[anchor] == pytest.approx(float(tiles[anchor].mean()), rel=1e-6)


def test_textureless_and_missing_tiles_fall_back_and_are_flagged(synthetic, canvas) -> None:
    grid = Grid(4, 3)
    tiles, truth = synthetic.jittered_grid(canvas, grid, (150, 150), 0.2, jitter=1.0, seed=4)
    flat, missing = 6, 7
    tiles[flat] = np.full((150, 150), 3.0, np.float32) + 0.01 * np.random.default_rng(0).standard_normal(
        (150, 150)).astype(np.float32)
    placement = place_tiles(lambda t: None if t == missing else tiles[t], grid, 0.2)
    assert placement.status[flat] is TileStatus.FALLBACK
    assert placement.status[missing] is TileStatus.MISSING
    assert placement.tiles_with(TileStatus.REGISTERED) == sorted(set(tiles) - {flat, missing})
    assert missing not in placement.signal
    good = {t: p for t, p in truth.items() if t not in (flat, missing)}
    assert synthetic.placement_rms(placement.positions, good) <= 0.2
    assert all(r.state is LinkState.LOW_CONFIDENCE
               for r in placement.links if flat in (r.link.a, r.link.b))
    for tile in (flat, missing):  # the stage model relative to registered neighbours
        offset = np.subtract(placement.positions[tile], placement.nominal[tile])
        reference = np.subtract(placement.positions[1], placement.nominal[1])
        assert offset == pytest.approx(reference, abs=3.0)


def test_a_loader_may_fail_with_file_not_found_and_tiles_may_be_integers(synthetic, canvas):
    grid = Grid(2, 2)
    tiles, truth = synthetic.jittered_grid(canvas, grid, (96, 96), 0.25, seed=5)

    def load(tile: int) -> np.ndarray:
        if tile == 4:
            raise FileNotFoundError(tile)
        return np.round(2000 + 300 * tiles[tile]).astype(np.uint16)

    placement = place_tiles(load, grid, (0.25, 0.25))
    assert placement.status[4] is TileStatus.MISSING
    assert synthetic.placement_rms(placement.positions, {t: truth[t] for t in (1, 2, 3)}) <= 0.2


def test_only_overlap_strips_are_kept_between_tiles(synthetic, canvas) -> None:
    grid = Grid(3, 3)
    tiles, _ = synthetic.jittered_grid(canvas, grid, (96, 96), 0.2, seed=6)
    alive: list[weakref.ref] = []
    most_alive = 0

    def load(tile: int) -> np.ndarray:
        nonlocal most_alive
        most_alive = max(most_alive, sum(r() is not None for r in alive))
        data = tiles[tile].copy()
        alive.append(weakref.ref(data))
        return data

    placement = place_tiles(load, grid, 0.2)
    assert len(alive) == 9, "every tile is read once"
    assert most_alive <= 1, "a tile is released once its strips are cut"
    assert all(r() is None for r in alive)
    assert len(placement.positions) == 9


def test_signal_can_be_skipped_for_lazy_tiles(synthetic, canvas) -> None:
    grid = Grid(2, 1)
    tiles, _ = synthetic.jittered_grid(canvas, grid, (64, 96), 0.2, seed=7)
    placement = place_tiles(tiles, grid, 0.2, measure_signal=False)
    assert placement.signal == {}
    assert placement.status == {1: TileStatus.REGISTERED, 2: TileStatus.REGISTERED}


def test_tiles_of_the_wrong_shape_are_refused(synthetic, canvas) -> None:
    grid = Grid(2, 2)
    tiles, _ = synthetic.jittered_grid(canvas, grid, (64, 64), 0.2, seed=8)
    with pytest.raises(TileShapeError, match=r"tile 3 has shape \(64, 60\), the other tiles \(64, 64\)"):
        place_tiles({**tiles, 3: tiles[3][:, :60]}, grid, 0.2)
    with pytest.raises(TileShapeError, match="tile 1 is 3D"):
        place_tiles({**tiles, 1: tiles[1][None]}, grid, 0.2)
    with pytest.raises(TileShapeError, match=r"the other tiles \(64, 70\)"):
        place_tiles(tiles, grid, 0.2, tile_shape=(64, 70))


def test_unusable_inputs_are_reported(synthetic, canvas) -> None:
    grid = Grid(2, 2)
    with pytest.raises(ValueError, match="none of the 4 tiles"):
        place_tiles({}, grid, 0.2)
    with pytest.raises(ValueError, match="none of the 4 tiles"):
        place_tiles(lambda t: None, grid, 0.2, tile_shape=(64, 64))
    tiles, _ = synthetic.jittered_grid(canvas, grid, (64, 64), 0.2, seed=9)
    with pytest.raises(ValueError, match="at least 8"):
        place_tiles(tiles, grid, 0.05)
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        place_tiles(tiles, grid, 1.2)
