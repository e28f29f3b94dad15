"""Ramp blending: identity on identical data, gaps, incremental order, circular orientation."""

from __future__ import annotations

import random
from collections.abc import Hashable
from pathlib import Path

import numpy as np
import pytest

from opticstream_napari.config.zarr import ZarrConfig
from opticstream_napari.io.ome_zarr import create_pyramid, fill_pyramid
from opticstream_napari.processing.stitch.blend import (
    BlendAccumulator,
    BlendMode,
    MosaicLayout,
    blend_mode_for,
    blend_region,
    coverage,
    ramp,
)

TILE = (40, 50)


def _grid(rows: int, cols: int, step: tuple[int, int], jitter: float = 0.3, seed: int = 0):
    rng = np.random.default_rng(seed)
    return {
        (r, c): (r * step[0] + rng.uniform(-jitter, jitter), c * step[1] + rng.uniform(-jitter, jitter))
        for r in range(rows)
        for c in range(cols)
    }


def _cutter(source: np.ndarray, layout: MosaicLayout, missing: set[Hashable] = frozenset()):
    """A tile reader that cuts tiles out of ``source`` at the layout's integer offsets."""

    def read(key: Hashable, part: tuple[slice, ...]) -> np.ndarray | None:
        if key in missing:
            return None
        y, x = layout.offsets[key]
        *depth, rows, cols = part
        window = (slice(y + rows.start, y + rows.stop), slice(x + cols.start, x + cols.stop))
        return source[(*depth, *window)]

    return read


def _whole(layout: MosaicLayout) -> tuple[slice, ...]:
    return tuple(slice(0, n) for n in layout.shape)


def test_ramp_follows_the_spec() -> None:
    weights = ramp(10, 3)
    np.testing.assert_allclose(weights[:3], np.linspace(0, 1, 5)[1:-1])
    np.testing.assert_allclose(weights[3:7], 1.0)
    np.testing.assert_allclose(weights[7:], np.linspace(0, 1, 5)[1:-1][::-1])
    assert (ramp(7, 0) == 1).all() and ramp(4, 5).min() > 0


def test_identical_2d_data_is_reproduced_inside_the_covered_area() -> None:
    layout = MosaicLayout.from_positions(_grid(3, 4, (32, 41)), TILE, 0.2)
    source = np.random.default_rng(1).normal(60, 5, layout.shape).astype(np.float32)
    mosaic = blend_region(layout, _whole(layout), _cutter(source, layout))
    covered = coverage(layout) > 0
    assert covered.all()
    np.testing.assert_allclose(mosaic, source, rtol=1e-6)


def test_identical_3d_volume_and_partial_regions() -> None:
    layout = MosaicLayout.from_positions(_grid(2, 3, (33, 42)), TILE, 0.2, depth=6)
    source = np.random.default_rng(2).normal(0, 1, layout.shape).astype(np.float32)
    read = _cutter(source, layout)
    region = (slice(1, 5), slice(10, 60), slice(20, 97))
    np.testing.assert_allclose(blend_region(layout, region, read), source[region], rtol=1e-5,
                               atol=1e-6)


def test_positions_are_rounded_to_pixels() -> None:
    layout = MosaicLayout.from_positions({0: (10.4, -3.6), 1: (10.6, 40.5)}, TILE, 0.1)
    assert layout.offsets == {0: (0, 0), 1: (1, 45)}
    assert layout.shape == (41, 95)


def test_uncovered_pixels_are_nan_and_counted_zero() -> None:
    positions = {0: (0.0, 0.0), 1: (0.0, 45.0), 2: (35.0, 0.0)}
    layout = MosaicLayout.from_positions(positions, TILE, 0.2)
    source = np.ones(layout.shape, dtype=np.float32)
    mosaic = blend_region(layout, _whole(layout), _cutter(source, layout))
    counts = coverage(layout)
    np.testing.assert_array_equal(np.isnan(mosaic), counts == 0)
    assert counts[60, 80] == 0 and counts[37, 20] == 2 and counts[37, 47] == 3


def test_a_missing_tile_leaves_a_gap_not_a_wrong_value() -> None:
    layout = MosaicLayout.from_positions(_grid(3, 3, (30, 40), jitter=0), TILE, 0.2)
    source = np.random.default_rng(3).uniform(1, 2, layout.shape).astype(np.float32)
    mosaic = blend_region(layout, _whole(layout), _cutter(source, layout, missing={(1, 1)}))
    gap = coverage(layout, available=set(layout.offsets) - {(1, 1)}) == 0
    assert gap.sum() > 0
    assert np.isnan(mosaic[gap]).all()
    np.testing.assert_allclose(mosaic[~gap], source[~gap], rtol=1e-6)


def test_non_finite_samples_carry_no_weight() -> None:
    layout = MosaicLayout.from_positions({0: (0, 0), 1: (0, 30)}, TILE, 0.4)
    tiles = {0: np.full(TILE, 5.0, np.float32), 1: np.full(TILE, 7.0, np.float32)}
    tiles[1][:, :10] = np.nan
    tiles[1][:, 40] = -np.inf

    def read(key: Hashable, part: tuple[slice, ...]) -> np.ndarray:
        return tiles[key][part]

    mosaic = blend_region(layout, _whole(layout), read)
    np.testing.assert_allclose(mosaic[:, 30:40], 5.0, rtol=1e-6)
    assert np.isnan(mosaic[:, 70]).all() and (mosaic[:, 60] == 7.0).all()


def test_wrong_tile_shape_is_an_error_naming_the_tile() -> None:
    layout = MosaicLayout.from_positions({"a": (0, 0), "b": (0, 40)}, TILE, 0.2)

    def read(key: Hashable, part: tuple[slice, ...]) -> np.ndarray:
        return np.zeros((30, 30), np.float32) if key == "b" else np.zeros(TILE, np.float32)[part]

    with pytest.raises(ValueError, match="tile 'b'"):
        blend_region(layout, _whole(layout), read)


def test_accumulator_gives_the_same_result_in_any_order() -> None:
    layout = MosaicLayout.from_positions(_grid(2, 3, (30, 40)), TILE, 0.25)
    rng = np.random.default_rng(4)
    tiles = {k: rng.normal(10, 2, TILE).astype(np.float32) for k in layout.offsets}
    results = []
    for seed in range(3):
        order = list(tiles)
        random.Random(seed).shuffle(order)
        acc = BlendAccumulator(layout.shape)
        for key in order:
            acc.add(tiles[key], layout.offsets[key], layout.weights_y, layout.weights_x)
        results.append(acc.result())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-6)
    np.testing.assert_allclose(results[0], results[2], rtol=1e-6)


def test_incremental_pyramid_as_tiles_arrive_equals_a_single_pass(tmp_path: Path) -> None:
    layout = MosaicLayout.from_positions(_grid(3, 3, (30, 40)), TILE, 0.2)
    rng = np.random.default_rng(5)
    tiles = {k: rng.normal(50, 5, TILE).astype(np.float32) for k in layout.offsets}
    config = ZarrConfig(chunk=16, shard=None)

    def reader(available: set[Hashable]):
        def read(key: Hashable, part: tuple[slice, ...]) -> np.ndarray | None:
            return tiles[key][part] if key in available else None

        return read

    single = create_pyramid(tmp_path / "single.ome.zarr", layout.shape, np.float32, (10, 10),
                            zarr_config=config)
    fill_pyramid(single, lambda r: blend_region(layout, r, reader(set(tiles))))
    live = create_pyramid(tmp_path / "live.ome.zarr", layout.shape, np.float32, (10, 10),
                          zarr_config=config)
    arrived: set[Hashable] = set()
    order = list(tiles)
    random.Random(6).shuffle(order)
    for key in order:
        arrived.add(key)
        read = reader(set(arrived))
        units = live.write_units(layout.tile_region(key))
        fill_pyramid(live, lambda r, read=read: blend_region(layout, r, read), units)
    for level in range(len(single.levels)):
        np.testing.assert_array_equal(live.read(level), single.read(level))


def test_orientation_is_correct_across_the_90_degree_wrap() -> None:
    layout = MosaicLayout.from_positions({0: (0, 0), 1: (0, 30)}, TILE, 0.4)
    tiles = {0: np.full(TILE, 88.0, np.float32), 1: np.full(TILE, -88.0, np.float32)}
    mosaic = blend_region(
        layout, _whole(layout), lambda k, p: tiles[k][p], BlendMode.CIRCULAR_180
    )
    overlap = mosaic[:, 30:50]
    distance_to_90 = np.abs((overlap - 90.0 + 90.0) % 180.0 - 90.0)
    assert distance_to_90.max() < 2.0 + 1e-4
    assert np.abs(mosaic[:, :30] - 88.0).max() < 1e-3 and np.abs(mosaic[:, 50:] + 88.0).max() < 1e-3


def test_weighted_circular_mean_differs_from_the_unweighted_one() -> None:
    layout = MosaicLayout.from_positions({0: (0, 0), 1: (0, 30)}, TILE, 0.4)
    tiles = {0: np.full(TILE, 10.0, np.float32), 1: np.full(TILE, 50.0, np.float32)}
    mosaic = blend_region(layout, _whole(layout), lambda k, p: tiles[k][p], BlendMode.CIRCULAR_180)
    unweighted = 30.0
    near_tile_0 = mosaic[20, 31]
    near_tile_1 = mosaic[20, 48]
    assert near_tile_0 < 20.0 and near_tile_1 > 40.0
    assert abs(near_tile_0 - unweighted) > 10.0
    w0, w1 = layout.weights_x[31], layout.weights_x[31 - 30]
    doubled = np.deg2rad([20.0, 100.0])
    expected = 0.5 * np.rad2deg(
        np.arctan2(w0 * np.sin(doubled[0]) + w1 * np.sin(doubled[1]),
                   w0 * np.cos(doubled[0]) + w1 * np.cos(doubled[1]))
    )
    assert abs(near_tile_0 - expected) < 1e-3


def test_blend_mode_for_modalities() -> None:
    assert blend_mode_for("ori") is BlendMode.CIRCULAR_180
    assert blend_mode_for("O3D") is BlendMode.CIRCULAR_180
    assert blend_mode_for("aip") is BlendMode.LINEAR and blend_mode_for("dBI") is BlendMode.LINEAR
