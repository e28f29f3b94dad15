"""An LSM slice's layers: each camera's MIP halves, from its strips while they land, then its mosaic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from link_support import write_strip_mip

from opticstream_napari import naming
from opticstream_napari.config import LSMScanConfig
from opticstream_napari.engine.pipelines.lsm_work import stitch_channel_mip
from opticstream_napari.identity import LSMChannelId, LSMStripId
from opticstream_napari.simulate.lsm import lsm_preset
from opticstream_napari.viewer_link import lsm_layer_specs
from opticstream_napari.viewer_link.layer_specs import role_placeholders, slice_layer_specs


@pytest.fixture
def lsm_config(tmp_path: Path) -> LSMScanConfig:
    return lsm_preset(tmp_path / "project", "tiny").model_copy(update={"strips_per_slice": 3})


def test_each_camera_half_is_a_role_made_when_the_project_opens(lsm_config: LSMScanConfig) -> None:
    specs = role_placeholders(lsm_config)
    assert [spec.key for spec in specs] == [(1, "mip-ch1"), (1, "mip-ch2"), (2, "mip-ch1"), (2, "mip-ch2")]
    shown = [(spec.key, spec.kwargs["colormap"]) for spec in specs if spec.kwargs["visible"]]
    assert shown == [((1, "mip-ch1"), "green"), ((1, "mip-ch2"), "magenta")], "camera 1's halves, overlaid"
    assert {spec.kwargs["blending"] for spec in specs} == {"additive"}


def test_a_growing_mosaic_shows_the_strips_so_far_at_their_places(lsm_config: LSMScanConfig) -> None:
    first, third = write_strip_mip(lsm_config, 1, 1), write_strip_mip(lsm_config, 1, 3)
    found = slice_layer_specs(lsm_config, 1, {})
    assert found.present == {(1, "mip-ch1"), (1, "mip-ch2")}, "camera 2 has no strip yet"
    specs = {spec.key: spec for spec in found.specs}
    top, bottom = specs[(1, "mip-ch1")].data[0], specs[(1, "mip-ch2")].data[0]
    assert top.shape == bottom.shape == (60, 30)
    np.testing.assert_array_equal(top[:20], first[:20])
    np.testing.assert_array_equal(top[20:40], 0)
    np.testing.assert_array_equal(top[40:], third[:20])
    np.testing.assert_array_equal(bottom[40:], third[20:])
    assert specs[(1, "mip-ch1")].source.endswith("#strips=1,3")
    assert specs[(1, "mip-ch1")].kwargs["name"] == "MIP ch1 · camera 1 · slice 1"

    again = slice_layer_specs(lsm_config, 1, {key: spec.source for key, spec in specs.items()})
    assert again.specs == [] and again.present == found.present, "nothing new: nothing to apply"
    write_strip_mip(lsm_config, 1, 2)
    grown = slice_layer_specs(lsm_config, 1, {key: spec.source for key, spec in specs.items()})
    assert {spec.key for spec in grown.specs} == {(1, "mip-ch1"), (1, "mip-ch2")}
    assert (grown.specs[0].data[0] > 0).all(), "the middle strip filled its gap"


def test_the_channel_mosaic_replaces_the_strips_once_written(lsm_config: LSMScanConfig) -> None:
    for strip in (1, 2, 3):
        write_strip_mip(lsm_config, 2, strip)
    channel = LSMChannelId(lsm_config.project_name, 1, 2)
    stitch_channel_mip(lsm_config.model_dump(mode="json"), channel.to_dict())
    specs = {spec.key: spec for spec in slice_layer_specs(lsm_config, 1, {}).specs}
    final = lsm_config.output_root / naming.lsm_channel_mip_name(channel, "ch2")
    assert specs[(2, "mip-ch2")].source == str(final)
    np.testing.assert_array_equal(specs[(2, "mip-ch2")].data[0], tifffile.imread(final))


def test_a_large_mosaic_is_held_at_a_stride_within_the_budget(lsm_config: LSMScanConfig, monkeypatch) -> None:
    mips = [write_strip_mip(lsm_config, 1, strip) for strip in (1, 2, 3)]
    monkeypatch.setattr(lsm_layer_specs, "LEVEL_BUDGET", 60 * 30 * 2 // 4)
    spec = {s.key: s for s in slice_layer_specs(lsm_config, 1, {}).specs}[(1, "mip-ch1")]
    mosaic = np.concatenate([m[:20] for m in mips])
    np.testing.assert_array_equal(spec.data[0], mosaic[::2, ::2])
    assert spec.kwargs["scale"] == (2.0, 2.0), "the stride is in the layer's scale, so µm stay right"


def test_strips_of_different_sizes_leave_that_camera_out_with_a_warning_naming_the_file(
    lsm_config: LSMScanConfig, caplog
) -> None:
    write_strip_mip(lsm_config, 1, 1)
    write_strip_mip(lsm_config, 1, 2, (42, 30))
    write_strip_mip(lsm_config, 2, 1)
    found = slice_layer_specs(lsm_config, 1, {})
    assert {spec.key[0] for spec in found.specs} == {2}, "the other camera is still shown"
    assert any("chunk-0002" in r.message and "(21, 30)" in r.message and "(20, 30)" in r.message
               for r in caplog.records)


def test_each_strip_is_read_once_however_often_the_mosaic_is_rebuilt(lsm_config: LSMScanConfig, monkeypatch) -> None:
    """A slice of a hundred strips is rebuilt a hundred times; only the new strip's samples are read."""
    monkeypatch.setattr(lsm_layer_specs, "_BLOCKS", lsm_layer_specs._StripBlocks(2**30))
    reads: list[str] = []
    original = lsm_layer_specs.read_mip
    monkeypatch.setattr(lsm_layer_specs, "read_mip", lambda path: reads.append(path.name) or original(path))
    write_strip_mip(lsm_config, 1, 1)
    write_strip_mip(lsm_config, 1, 3)
    first = slice_layer_specs(lsm_config, 1, {})
    reads.clear()
    middle = write_strip_mip(lsm_config, 1, 2)
    grown = slice_layer_specs(lsm_config, 1, {spec.key: spec.source for spec in first.specs})
    per_strip = {strip: sum(f"chunk-000{strip}" in name for name in reads) for strip in (1, 2, 3)}
    assert per_strip == {1: 2, 2: 4, 3: 2}, "old strips: their headers only (one per half); the new one: read too"
    np.testing.assert_array_equal({s.key: s for s in grown.specs}[(1, "mip-ch2")].data[0][20:40], middle[20:])


def test_the_strip_cache_keeps_its_byte_limit_by_dropping_the_oldest(lsm_config: LSMScanConfig) -> None:
    for strip in (1, 2, 3):
        write_strip_mip(lsm_config, 1, strip)
    paths = [lsm_config.output_root / naming.lsm_strip_mip_name(LSMStripId(lsm_config.project_name, 1, 1, s))
             for s in (1, 2, 3)]
    half = 20 * 30 * 2  # one strip's half at stride 1, in bytes
    blocks = lsm_layer_specs._StripBlocks(2 * half)
    for path in paths:
        blocks.get(path, 0, 0, 1)
    kept = [key[0] for key in blocks._blocks]
    assert kept == [str(paths[1]), str(paths[2])] and blocks._bytes == 2 * half
