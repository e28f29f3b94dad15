"""Mosaics in memory: live previews within a budget, patched from the regions the engine wrote; small finals."""

from __future__ import annotations

import numpy as np
from link_support import PIXEL, SHAPE, live, pyramid, region

from opticstream_napari import naming
from opticstream_napari.config import PSOCTScanConfig
from opticstream_napari.engine.pipelines.psoct_mosaic import stitched_folder
from opticstream_napari.identity import PSOCTMosaicId
from opticstream_napari.viewer_link import live_levels
from opticstream_napari.viewer_link.layer_specs import slice_layer_specs
from opticstream_napari.viewer_link.live_levels import (
    is_live_preview,
    live_slice_layers,
    load_live_levels,
    loaded,
    needs_loading,
    read_patches,
)


def test_live_previews_load_into_memory_and_finals_stay_on_disk(config: PSOCTScanConfig) -> None:
    mosaic = PSOCTMosaicId(config.project_name, 1, 1)
    store = live(config, mosaic, "aip")
    region(mosaic, "aip", store, 0, 0)
    (spec,) = live_slice_layers(config, 1, {}).specs
    assert is_live_preview(spec) and all(isinstance(level, np.ndarray) for level in spec.data)
    assert [level.shape for level in spec.data] == [level.shape for level in store.levels]
    np.testing.assert_array_equal(spec.data[0], store.read(0))
    assert spec.data[0][0, 0] == 70.0 and np.isnan(spec.data[0][-1, -1])


def test_lazy_roles_stay_on_disk_until_loaded(config: PSOCTScanConfig) -> None:
    """Hidden layers' previews are not read by the slice scan; loading them later gives the same levels."""
    mosaic = PSOCTMosaicId(config.project_name, 1, 1)
    region(mosaic, "aip", live(config, mosaic, "aip"), 0, 0)
    key = (1, "aip")
    (spec,) = live_slice_layers(config, 1, {}, lazy=frozenset({key})).specs
    assert spec.key == key and needs_loading(spec)
    assert not any(isinstance(level, np.ndarray) for level in spec.data)
    (eager,) = live_slice_layers(config, 1, {}).specs
    assert not needs_loading(eager)
    for level, expected in zip(loaded(spec).data, eager.data, strict=True):
        np.testing.assert_array_equal(level, expected)


def test_a_preview_larger_than_the_budget_starts_at_a_coarser_level(config: PSOCTScanConfig) -> None:
    mosaic = PSOCTMosaicId(config.project_name, 1, 1)
    store = live(config, mosaic, "aip")
    (spec,) = slice_layer_specs(config, 1, {}).specs
    level0 = SHAPE[0] * SHAPE[1] * 4
    held = load_live_levels(spec, budget=level0 - 1)
    assert [level.shape for level in held.data] == [level.shape for level in store.levels[1:]]
    assert tuple(held.kwargs["scale"]) == (2 * PIXEL[0], 2 * PIXEL[1])
    assert tuple(held.kwargs["translate"]) == store.levels[1].translation


def test_patches_cover_a_region_on_every_held_level(config: PSOCTScanConfig) -> None:
    mosaic = PSOCTMosaicId(config.project_name, 1, 1)
    store = live(config, mosaic, "aip")
    (spec,) = live_slice_layers(config, 1, {}).specs
    held = [level.copy() for level in spec.data]
    written = [region(mosaic, "aip", store, 16, 32).region, region(mosaic, "aip", store, 16, 48).region]
    patches = read_patches(str(store.path), len(held), written)
    assert [p.index for p in patches] == list(range(len(held)))
    assert patches[0].box == (slice(16, 32), slice(32, 64))
    for patch in patches:
        held[patch.index][patch.box] = patch.data
    for level, array in enumerate(held):
        np.testing.assert_array_equal(array, store.read(level), err_msg=f"level {level}")


def test_a_final_mosaic_is_held_only_when_its_full_resolution_fits(config: PSOCTScanConfig, monkeypatch) -> None:
    final = pyramid(stitched_folder(config, 1) / naming.mosaic_zarr_name(1, "aip"))
    final.write_region((slice(0, 16), slice(0, 16)), np.full((16, 16), 55.0, np.float32))
    final.mark_complete()
    (held,) = live_slice_layers(config, 1, {}).specs
    assert not is_live_preview(held) and isinstance(held.data[0], np.ndarray) and held.data[0][0, 0] == 55.0
    monkeypatch.setattr(live_levels, "LEVEL_BUDGET", SHAPE[0] * SHAPE[1] * 4 - 1)
    (lazy,) = live_slice_layers(config, 1, {}).specs
    assert not isinstance(lazy.data[0], np.ndarray) and lazy.data[0].shape == SHAPE, "never a coarser final"
