"""The mediator: multiscale layers from OME-Zarr pyramids, refreshed as regions land, per slice."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import numpy as np
import pytest
import tifffile
import yaml
from link_support import PIXEL, SHAPE, VOXEL, live, pyramid, region, volume, write_strip_mip
from napari.layers import Layer

from opticstream_napari import naming
from opticstream_napari.config import PSOCTScanConfig
from opticstream_napari.engine.messages import ChannelStitched, MosaicFinalised, UnitCompleted, VolumesStitched
from opticstream_napari.engine.pipelines.lsm_work import stitch_channel_mip
from opticstream_napari.engine.pipelines.psoct_mosaic import live_path, pixel_size_um, stitched_folder
from opticstream_napari.identity import LSMChannelId, LSMStripId, PSOCTMosaicId
from opticstream_napari.io.nifti import write_enface_nifti
from opticstream_napari.io.ome_zarr import OmeZarrPyramid
from opticstream_napari.simulate.lsm import lsm_preset
from opticstream_napari.viewer_link import DISPLAY, ViewerLink, mediator
from opticstream_napari.viewer_link.layer_specs import role_placeholders


@pytest.fixture
def link(make_napari_viewer_proxy, config: PSOCTScanConfig) -> Iterator[ViewerLink]:
    link = ViewerLink(make_napari_viewer_proxy())
    link.set_config(config)
    yield link
    link.close()


def _live_aip(link: ViewerLink, config: PSOCTScanConfig, qtbot) -> tuple[PSOCTMosaicId, OmeZarrPyramid, Layer]:
    """Slice 1's normal AIP preview with its first block written, and its layer once shown."""
    mosaic = PSOCTMosaicId(config.project_name, 1, 1)
    store = live(config, mosaic, "aip")
    link.receive(region(mosaic, "aip", store, 0, 0))
    qtbot.waitUntil(lambda: (1, "aip") in link.layers and not link.busy, timeout=5000)
    return mosaic, store, link.layers[(1, "aip")]


def test_a_live_mosaic_appears_multiscale_and_refreshes_as_regions_land(
    link: ViewerLink, config: PSOCTScanConfig, qtbot
) -> None:
    mosaic, store, layer = _live_aip(link, config, qtbot)
    assert layer.multiscale and len(layer.data) == len(store.levels) > 1
    np.testing.assert_allclose(layer.scale, PIXEL)
    assert str(layer.units[0]) == "micrometer"
    assert tuple(layer.contrast_limits) == DISPLAY["aip"].limits and layer.visible
    point = (45.0, 250.0)  # µm: pixel (4, 25), outside the block written first, inside the next one
    assert np.isnan(layer.get_value(point, world=True)[1])
    link.receive(region(mosaic, "aip", store, 0, 16))
    qtbot.waitUntil(lambda: layer.get_value(point, world=True)[1] == 70.0, timeout=5000)
    assert link.layers[(1, "aip")] is layer, "a region refreshes the layer, it does not replace it"
    assert all(isinstance(level, np.ndarray) for level in layer.data), "a growing mosaic is refreshed from memory"


def test_a_finalised_mosaic_replaces_its_preview_and_brings_mask_and_tiles(
    link: ViewerLink, config: PSOCTScanConfig, qtbot
) -> None:
    mosaic = PSOCTMosaicId(config.project_name, 1, 1)
    preview = live(config, mosaic, "aip")
    link.receive(region(mosaic, "aip", preview, 0, 0))
    qtbot.waitUntil(lambda: (1, "aip") in link.layers, timeout=5000)
    folder = stitched_folder(config, 1)
    final = pyramid(folder / naming.mosaic_zarr_name(1, "aip"))
    final.write_region((slice(0, SHAPE[0]), slice(0, SHAPE[1])), np.full(SHAPE, 55.0, np.float32))
    final.mark_complete()
    mask = np.zeros(SHAPE, np.uint8)
    mask[10:30, 10:50] = 255
    write_enface_nifti(folder / naming.mosaic_mask_name(1), mask, PIXEL, dtype=np.uint8)
    tiles = [{"tile": t, "y": 0.0, "x": 0.0, "offset": [0, 30 * (t - 1)]} for t in (1, 2)]
    (folder / naming.mosaic_tile_coords_name(1)).write_text(
        yaml.safe_dump({"tile_shape": [64, 36], "pixel_size_um": list(PIXEL), "tiles": tiles}))
    layer = link.layers[(1, "aip")]
    swaps = []
    layer.events.data.connect(swaps.append)
    link.receive(MosaicFinalised(mosaic, {"aip": str(final.path)}))
    qtbot.waitUntil(lambda: {(1, "mask"), (1, "tiles")} <= set(link.layers), timeout=5000)
    qtbot.waitUntil(lambda: layer.get_value((300.0, 300.0), world=True)[1] == 55.0, timeout=5000)
    assert link.source_of((1, "aip")) == str(final.path)
    assert isinstance(layer.data[0], np.ndarray), "a final mosaic within the memory budget is shown from memory"
    assert not swaps, "the final mosaic has its preview's shape: copied into the shown levels, no data swap"
    labels = link.layers[(1, "mask")]
    assert labels.data.sum() == 20 * 40 and not labels.visible and labels.name == "mask · normal · slice 1"
    outlines = link.layers[(1, "tiles")]
    assert list(outlines.features["tile"]) == [1, 2] and len(outlines.data) == 2


def _slice_1_with_three_layers(link: ViewerLink, config: PSOCTScanConfig, qtbot) -> PSOCTMosaicId:
    """Live AIP and ORI of slice 1's normal mosaic and AIP of its tilted one, shown; returns the
    normal mosaic of slice 2, which has no data yet."""
    project = config.project_name
    normal1, tilted1 = PSOCTMosaicId(project, 1, 1), PSOCTMosaicId(project, 1, 2)
    for mosaic, modality in ((normal1, "aip"), (normal1, "ori"), (tilted1, "aip")):
        link.receive(region(mosaic, modality, live(config, mosaic, modality), 0, 0))
    qtbot.waitUntil(lambda: len(link.layers) == 3 and not link.busy, timeout=5000)
    return PSOCTMosaicId(project, 2, 3)


def test_one_layer_per_role_shows_the_selected_slice(link: ViewerLink, config: PSOCTScanConfig, qtbot) -> None:
    """Slice 1 has both mosaics, slice 2 only its first so far; the layers follow the newest slice."""
    normal2 = _slice_1_with_three_layers(link, config, qtbot)
    normal, ori, tilted = link.layers[(1, "aip")], link.layers[(1, "ori")], link.layers[(2, "aip")]
    assert normal.visible and tilted.visible and not ori.visible
    ori.visible = True

    second = live(config, normal2, "aip")
    link.receive(region(normal2, "aip", second, 16, 16))
    qtbot.waitUntil(lambda: normal.name == "AIP · normal · slice 2" and not link.busy, timeout=5000)
    assert link.shown_slice == 2, "the newest slice is followed while the operator is at the end"
    assert not tilted.visible, "slice 2 has no tilted mosaic yet: its layer is hidden, not stale"
    assert tilted.name == "AIP · tilted · none on slice 2"
    assert len(link.layers) == 3 and link.source_of((1, "aip")) == str(live_path(config, normal2, "aip"))

    link.show_slice(1)
    qtbot.waitUntil(lambda: normal.name == "AIP · normal · slice 1" and not link.busy, timeout=5000)
    assert tilted.visible and ori.visible, "the operator's choice of layers holds across slices"
    link.receive(region(normal2, "aip", second, 32, 32))
    qtbot.waitUntil(lambda: not link.busy, timeout=5000)
    assert link.shown_slice == 1, "an older slice picked by the operator stays shown"


def test_layers_a_new_slice_lacks_are_hidden_a_few_per_tick(
    link: ViewerLink, config: PSOCTScanConfig, qtbot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hiding and renaming a layer costs napari several ms of GUI thread; a new slice that lacks
    twenty roles must not do them all in one go. With no time budget, one per tick."""
    monkeypatch.setattr(mediator, "EMPTYING_BUDGET_S", 0.0)
    ticks = [0]
    tick_once = ViewerLink._tick_once

    def counted(self: ViewerLink) -> None:
        ticks[0] += 1
        tick_once(self)

    monkeypatch.setattr(ViewerLink, "_tick_once", counted)
    normal2 = _slice_1_with_three_layers(link, config, qtbot)
    ori, tilted = link.layers[(1, "ori")], link.layers[(2, "aip")]
    ori.visible = True
    hidden_at: dict[str, int] = {}
    for layer in (ori, tilted):
        layer.events.visible.connect(lambda event, name=layer.name: hidden_at.setdefault(name, ticks[0]))
    link.receive(region(normal2, "aip", live(config, normal2, "aip"), 16, 16))
    qtbot.waitUntil(lambda: len(hidden_at) == 2 and not link.busy, timeout=5000)
    assert not ori.visible and not tilted.visible
    assert ori.name == "ORI · normal · none on slice 2" and tilted.name == "AIP · tilted · none on slice 2"
    assert len(set(hidden_at.values())) == 2, f"hidden in one tick: {hidden_at}"


def test_a_slice_change_before_the_hiding_is_done_hides_for_the_new_slice(
    link: ViewerLink, config: PSOCTScanConfig, qtbot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slices 2 and 3 arrive before the roles slice 2 lacks were hidden; slice 3 lacks them too,
    so they are hidden and named for slice 3, not left showing slice 1's data."""
    monkeypatch.setattr(mediator, "EMPTYING_BUDGET_S", 0.0)
    normal2 = _slice_1_with_three_layers(link, config, qtbot)
    ori, tilted = link.layers[(1, "ori")], link.layers[(2, "aip")]
    link._timer.stop()  # ticks by hand from here, so slice 3 lands between two of them
    link.receive(region(normal2, "aip", live(config, normal2, "aip"), 16, 16))
    link._tick()
    qtbot.waitUntil(lambda: len(link._to_empty) == 2, timeout=5000)
    normal3 = PSOCTMosaicId(config.project_name, 3, 5)
    link.receive(region(normal3, "aip", live(config, normal3, "aip"), 16, 16))
    link._tick()
    assert link.shown_slice == 3 and tilted.visible, "nothing was hidden before slice 3 came"
    link._timer.start()
    qtbot.waitUntil(lambda: not tilted.visible and not link.busy, timeout=5000)
    assert tilted.name == "AIP · tilted · none on slice 3" and ori.name == "ORI · normal · none on slice 3"
    assert not ori.visible


def test_a_finished_volume_mosaic_is_a_3d_multiscale_layer_beside_the_2d_ones(
    link: ViewerLink, config: PSOCTScanConfig, qtbot
) -> None:
    """napari shows the 2D mosaics in every z plane of the volume and gains a z slider."""
    mosaic = PSOCTMosaicId(config.project_name, 1, 1)
    link.receive(region(mosaic, "aip", live(config, mosaic, "aip"), 0, 0))
    qtbot.waitUntil(lambda: (1, "aip") in link.layers, timeout=5000)
    store = volume(stitched_folder(config, 1) / naming.mosaic_zarr_name(1, "dBI"))
    link.receive(VolumesStitched(mosaic, {"dBI": str(store.path)}))
    qtbot.waitUntil(lambda: (1, "dBI") in link.layers, timeout=5000)
    layer = link.layers[(1, "dBI")]
    assert layer.ndim == 3 and layer.multiscale and len(layer.data) == len(store.levels) > 1
    np.testing.assert_allclose(layer.scale, VOXEL)
    assert [str(unit) for unit in layer.units] == ["micrometer"] * 3
    assert tuple(layer.axis_labels) == ("z", "y", "x") and not layer.visible
    assert tuple(layer.contrast_limits) == DISPLAY["dBI"].limits
    viewer = link.viewer
    assert viewer.dims.ndim == 3 and tuple(viewer.dims.axis_labels) == ("z", "y", "x")
    assert link.layers[(1, "aip")].ndim == 2 and link.layers[(1, "aip")].visible
    layer.visible = True
    viewer.dims.set_point(0, 10.0)
    assert layer.get_value((10.0, 45.0, 250.0), world=True)[1] == 60.0
    assert link.layers[(1, "aip")].get_value((10.0, 45.0, 45.0), world=True)[1] == 70.0


def test_a_hidden_role_gets_its_new_data_only_when_shown(link: ViewerLink, config: PSOCTScanConfig, qtbot) -> None:
    """Swapping data costs napari a redraw; a hidden role is renamed for its new data, and reads it when shown."""
    link.prepare_layers()
    qtbot.waitUntil(lambda: not link.making_layers and not link.busy, timeout=20000)
    mosaic = PSOCTMosaicId(config.project_name, 1, 1)
    for modality in ("aip", "ori"):
        link.receive(region(mosaic, modality, live(config, mosaic, modality), 0, 0))
    qtbot.waitUntil(lambda: link.source_of((1, "aip")) == str(live_path(config, mosaic, "aip")), timeout=5000)
    ori = link.layers[(1, "ori")]
    qtbot.waitUntil(lambda: ori.name == "ORI · normal · slice 1" and not link.busy, timeout=5000)
    assert link.source_of((1, "ori")) == mediator.PLACEHOLDER, "hidden: still the empty layer"
    assert ori.data[0].shape == (2, 2) and np.isnan(np.asarray(ori.data[0])).all()

    ori.visible = True
    qtbot.waitUntil(lambda: link.source_of((1, "ori")) == str(live_path(config, mosaic, "ori")), timeout=5000)
    assert ori.data[0].shape == SHAPE and isinstance(ori.data[0], np.ndarray), "shown from memory, as a live preview"
    assert ori.get_value((45.0, 45.0), world=True)[1] == 70.0


def test_a_hidden_layer_is_named_for_the_slice_shown_when_the_operator_goes_back(
    link: ViewerLink, config: PSOCTScanConfig, qtbot
) -> None:
    """ORI shows slice 1, is hidden, is renamed for slice 2's data it did not read; back on slice 1
    its name says slice 1 again, and showing it brings slice 1's data."""
    normal2 = _slice_1_with_three_layers(link, config, qtbot)
    ori = link.layers[(1, "ori")]
    ori.visible = True
    qtbot.waitUntil(lambda: link.source_of((1, "ori")) is not None and not link.busy, timeout=5000)
    ori.visible = False
    link.receive(region(normal2, "ori", live(config, normal2, "ori"), 16, 16))
    qtbot.waitUntil(lambda: ori.name == "ORI · normal · slice 2" and not link.busy, timeout=5000)
    assert link.source_of((1, "ori")) == str(live_path(config, PSOCTMosaicId(config.project_name, 1, 1), "ori"))
    link.show_slice(1)
    qtbot.waitUntil(lambda: ori.name == "ORI · normal · slice 1" and not link.busy, timeout=5000)
    ori.visible = True
    qtbot.waitUntil(lambda: link.source_of((1, "ori")) == str(
        live_path(config, PSOCTMosaicId(config.project_name, 1, 1), "ori")) and not link.busy, timeout=5000)
    assert ori.get_value((45.0, 45.0), world=True)[1] == 70.0


def test_a_held_preview_hidden_by_the_operator_skips_regions_until_shown(
    link: ViewerLink, config: PSOCTScanConfig, qtbot
) -> None:
    mosaic, store, layer = _live_aip(link, config, qtbot)
    layer.visible = False
    link.receive(region(mosaic, "aip", store, 0, 16))
    qtbot.waitUntil(lambda: not link.busy, timeout=5000)
    assert np.isnan(layer.data[0][4, 25]), "no read for a hidden layer"
    layer.visible = True
    qtbot.waitUntil(lambda: layer.data[0][4, 25] == 70.0, timeout=5000)
    assert link.layers[(1, "aip")] is layer


def test_every_role_is_made_before_its_data_and_data_swaps_in(link: ViewerLink, config: PSOCTScanConfig, qtbot) -> None:
    """Layers are made before processing (at config load, or Start); tiles only swap data into them."""
    link.prepare_layers()
    roles = {spec.key for spec in role_placeholders(config)}
    qtbot.waitUntil(lambda: set(link.layers) == roles and not link.busy, timeout=20000)
    empty = link.layers[(1, "aip")]
    assert empty.name == "AIP · normal · waiting for data" and empty.multiscale
    assert gc.get_freeze_count() > 0, "what exists once the layers are made is spared later full collections"
    assert link.layers[(1, "mask")].ndim == 2 and link.layers[(0, "focus-normal")].ndim == 2
    size_x, size_y, size_z = config.acquisition.scan_resolution_3d_um
    for key, layer in link.layers.items():  # the data's own scale already: the first data changes no transform
        expected = (size_z, size_y, size_x) if layer.ndim == 3 else pixel_size_um(config)
        np.testing.assert_allclose(layer.scale, expected, err_msg=str(key))
    mosaic = PSOCTMosaicId(config.project_name, 1, 1)
    link.receive(region(mosaic, "aip", live(config, mosaic, "aip"), 0, 0))
    qtbot.waitUntil(lambda: link.source_of((1, "aip")) == str(live_path(config, mosaic, "aip")), timeout=5000)
    assert link.layers[(1, "aip")] is empty and empty.name == "AIP · normal · slice 1"
    np.testing.assert_allclose(empty.scale, PIXEL)
    assert tuple(empty.contrast_limits) == DISPLAY["aip"].limits
    link.close()
    assert gc.get_freeze_count() == 0, "closing hands the frozen objects back to the collector"


def test_the_progress_bar_waits_for_a_tick_that_changed_no_layer(
    link: ViewerLink, config: PSOCTScanConfig, qtbot, monkeypatch
) -> None:
    """napari's bar repaints the window from inside its update: in the same tick as new layer data
    the two costs would add up to one long stall, so the bar waits for the next quiet tick."""
    mosaic, store, _ = _live_aip(link, config, qtbot)
    link._timer.stop()
    updates: list[float] = []
    monkeypatch.setattr(link, "_update_progress", lambda: updates.append(1.0))
    link.receive(region(mosaic, "aip", store, 0, 16))
    link._tick()  # reads the region off the GUI thread
    qtbot.waitUntil(lambda: bool(link._dirty), timeout=5000)
    link._progress_stale, link._progress_due = True, 0.0
    link._tick()
    assert updates == [], "the tick that refreshed the mosaic left the bar alone"
    link._tick()
    assert updates == [1.0] and not link._progress_stale


def test_an_lsm_camera_mosaic_grows_strip_by_strip_then_shows_the_channel_mosaic(
    make_napari_viewer_proxy, tmp_path, qtbot
) -> None:
    config = lsm_preset(tmp_path / "lsm", "tiny").model_copy(update={"strips_per_slice": 2})
    link = ViewerLink(make_napari_viewer_proxy())
    link.set_config(config)
    try:
        first = write_strip_mip(config, 1, 1)
        link.receive(UnitCompleted(LSMStripId(config.project_name, 1, 1, 1), 1.0))
        qtbot.waitUntil(lambda: (1, "mip-ch1") in link.layers and not link.busy, timeout=10000)
        layer = link.layers[(1, "mip-ch1")]
        assert layer.name == "MIP ch1 · camera 1 · slice 1" and layer.visible
        np.testing.assert_array_equal(layer.data[0][:20], first[:20])
        np.testing.assert_array_equal(layer.data[0][20:], 0)

        write_strip_mip(config, 1, 2)
        channel = LSMChannelId(config.project_name, 1, 1)
        stitch_channel_mip(config.model_dump(mode="json"), channel.to_dict())
        link.receive(ChannelStitched(channel, {}))
        final = config.output_root / naming.lsm_channel_mip_name(channel, "ch1")
        qtbot.waitUntil(lambda: link.source_of((1, "mip-ch1")) == str(final) and not link.busy, timeout=10000)
        np.testing.assert_array_equal(link.layers[(1, "mip-ch1")].data[0], tifffile.imread(final))
    finally:
        link.close()
