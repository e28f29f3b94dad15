"""Layer specs: which stores a slice shows (live preview, then the final mosaic) and how."""

from __future__ import annotations

import shutil

from link_support import PIXEL, SHAPE, live, pyramid

from opticstream_napari import naming
from opticstream_napari.config import PSOCTScanConfig
from opticstream_napari.engine.pipelines.psoct_mosaic import stitched_folder
from opticstream_napari.identity import PSOCTMosaicId
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
