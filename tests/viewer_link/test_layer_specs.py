"""Layer specs: which stores a slice shows (live preview, then the final mosaic) and how."""

from __future__ import annotations

import shutil

import numpy as np
from link_support import DEPTH, PIXEL, SHAPE, VOXEL, live, pyramid, volume

from opticstream_napari import naming
from opticstream_napari.config import PSOCTScanConfig
from opticstream_napari.engine.pipelines.psoct_mosaic import stitched_folder
from opticstream_napari.identity import PSOCTMosaicId
from opticstream_napari.io.nifti import save_focus_plane
from opticstream_napari.viewer_link import slice_layer_specs


def test_specs_describe_live_then_final_stores(config: PSOCTScanConfig) -> None:
    mosaic = PSOCTMosaicId(config.project_name, 1, 1)
    preview = live(config, mosaic, "ori")
    found = slice_layer_specs(config, 1, {})
    (spec,) = found.specs
    assert found.present == {(1, "ori")} and spec.key == (1, "ori") and spec.slice == 1
    assert spec.source == str(preview.path) and spec.kind == "image"
    assert spec.kwargs["name"] == "ORI · normal · slice 1"
    assert [level.shape for level in spec.data] == [level.shape for level in preview.levels]
    assert spec.kwargs["multiscale"] and not spec.kwargs["cache"]
    assert spec.kwargs["colormap"] == "twilight_shifted" and spec.kwargs["contrast_limits"] == (-90.0, 90.0)
    assert list(spec.kwargs["scale"]) == list(PIXEL) and spec.extent == SHAPE
    (coarse,) = slice_layer_specs(config, 1, {}, preview_level=1).specs
    assert len(coarse.data) == len(spec.data) - 1 and list(coarse.kwargs["scale"]) == [20.0, 20.0]
    assert slice_layer_specs(config, 1, {spec.key: spec.source}).specs == []
    final = pyramid(stitched_folder(config, 1) / naming.mosaic_zarr_name(1, "ori"))
    assert slice_layer_specs(config, 1, {spec.key: spec.source}).specs == [], "an incomplete final store waits"
    final.mark_complete()
    (swapped,) = slice_layer_specs(config, 1, {spec.key: spec.source}).specs
    assert swapped.source == str(final.path)


def test_a_store_being_recreated_is_left_for_the_next_scan(config: PSOCTScanConfig) -> None:
    mosaic = PSOCTMosaicId(config.project_name, 1, 1)
    preview = live(config, mosaic, "aip")
    shutil.rmtree(preview.path / "0")  # the engine recreates a preview: the group is there, its levels not yet
    found = slice_layer_specs(config, 1, {})
    assert found.specs == [] and found.present == {(1, "aip")}, "kept as it is, not hidden, not an error"


def test_finished_volume_mosaics_are_3d_layers_and_the_focus_plane_comes_once_saved(config: PSOCTScanConfig) -> None:
    folder = stitched_folder(config, 1)
    pyramid(folder / naming.mosaic_zarr_name(2, "R3D"))  # not complete: the engine is still writing it
    assert slice_layer_specs(config, 1, {}).specs == []
    store = volume(folder / naming.mosaic_zarr_name(1, "O3D"))
    (spec,) = slice_layer_specs(config, 1, {}).specs
    assert spec.key == (1, "O3D") and spec.source == str(store.path) and spec.extent == (DEPTH, *SHAPE)
    assert [level.shape for level in spec.data] == [level.shape for level in store.levels]
    kwargs = spec.kwargs
    assert kwargs["name"] == "O3D · normal · slice 1" and kwargs["multiscale"] and not kwargs["visible"]
    assert list(kwargs["scale"]) == list(VOXEL) and kwargs["units"] == ("µm",) * 3
    assert kwargs["axis_labels"] == ("z", "y", "x")
    assert kwargs["colormap"] == "twilight_shifted" and kwargs["contrast_limits"] == (-90.0, 90.0)
    assert slice_layer_specs(config, 1, {}).present == {(1, "O3D")}

    save_focus_plane(config.project_base_path, "normal", np.arange(SHAPE[0] * SHAPE[1], dtype=np.float32)
                     .reshape(SHAPE), PIXEL)
    focus = [s for s in slice_layer_specs(config, 1, {spec.key: spec.source}).specs if s.key[0] == 0]
    assert [(s.key, s.kwargs["name"]) for s in focus] == [((0, "focus-normal"), "focus plane · normal")]
    assert not focus[0].kwargs["visible"]
