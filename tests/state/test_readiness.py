"""Readiness rules of spec 1.4, where a failed child blocks until it is retried or skipped."""

from __future__ import annotations

from pathlib import Path

import pytest

from opticstream_napari.config import LSMScanConfig, PSOCTAcquisitionParams, PSOCTScanConfig
from opticstream_napari.identity import (
    LSMChannelId,
    LSMStripId,
    PSOCTBatchId,
    PSOCTMosaicId,
    PSOCTSliceId,
    PSOCTTileId,
)
from opticstream_napari.state.readiness import (
    batch_readiness,
    channel_readiness,
    mosaic_readiness,
    readiness,
    slice_readiness,
)
from opticstream_napari.state.service import StateService


def _complete(state: StateService, *idents: object) -> None:
    for ident in idents:
        with state.update(ident) as node:  # type: ignore[arg-type]
            node.mark_started()
            node.mark_completed()


def _fail(state: StateService, ident: object, error: str) -> None:
    with state.update(ident) as node:  # type: ignore[arg-type]
        node.mark_started()
        node.mark_failed(error)


def _reasons(result: object) -> list[tuple[object, str, str | None]]:
    return [(b.ident, b.reason, b.error) for b in result.blockers]  # type: ignore[attr-defined]


def test_channel_rule(state: StateService) -> None:
    channel = LSMChannelId("q", 1, 1)
    s1, s2, s3 = (LSMStripId("q", 1, 1, i) for i in (1, 2, 3))
    assert _reasons(channel_readiness(state, channel, 3)) == [
        (s1, "missing", None), (s2, "missing", None), (s3, "missing", None)]
    for strip in (s1, s2):
        with state.update(strip) as node:
            node.mark_started()
            node.set_flag("compressed")
    _fail(state, s3, "strip folder 0.2 GB < 25 GB")
    result = channel_readiness(state, channel, 3)
    assert _reasons(result) == [(s3, "failed", "strip folder 0.2 GB < 25 GB")]
    assert result.failed == result.blockers and not result.ready
    assert "strip=3 failed: strip folder 0.2 GB < 25 GB" in result.describe()
    with state.update(s3) as node:
        node.mark_pending()
    assert _reasons(channel_readiness(state, channel, 3)) == [(s3, "compressed not set (pending)",
                                                              None)]
    with state.update(s3) as node:
        node.set_flag("compressed")
    assert channel_readiness(state, channel, 3).ready
    assert channel_readiness(state, channel, 3).describe().endswith("is ready")


def test_a_compressed_but_failed_strip_still_blocks_until_skipped(state: StateService) -> None:
    channel = LSMChannelId("q", 2, 1)
    strips = [LSMStripId("q", 2, 1, i) for i in (1, 2)]
    for strip in strips:
        with state.update(strip) as node:
            node.set_flag("compressed")
    with state.update(strips[1]) as node:
        node.mark_failed("backup verification failed")
    assert _reasons(channel_readiness(state, channel, 2)) == [
        (strips[1], "failed", "backup verification failed")]
    with state.update(strips[1]) as node:
        node.mark_skipped("operator accepts the missing backup")
    assert channel_readiness(state, channel, 2).ready


def test_a_skipped_strip_counts_even_uncompressed(state: StateService) -> None:
    channel = LSMChannelId("q", 3, 1)
    with state.update(LSMStripId("q", 3, 1, 1)) as node:
        node.set_flag("compressed")
    with state.update(LSMStripId("q", 3, 1, 2)) as node:
        node.mark_skipped("never acquired")
    assert channel_readiness(state, channel, 2).ready


def test_mosaic_rule_batches(state: StateService) -> None:
    mosaic = PSOCTMosaicId("p", 1, 1)
    b1, b2, b3 = (PSOCTBatchId("p", 1, 1, b) for b in (1, 2, 3))
    assert not mosaic_readiness(state, mosaic, 3).ready
    _complete(state, b1)
    with state.update(b2) as node:
        node.mark_started()
    _fail(state, b3, "MATLAB exited with 137")
    assert _reasons(mosaic_readiness(state, mosaic, 3)) == [
        (b2, "running", None), (b3, "failed", "MATLAB exited with 137")]
    _complete(state, b2)
    assert mosaic_readiness(state, mosaic, 3).failed[0].ident == b3
    _complete(state, b3)
    assert mosaic_readiness(state, mosaic, 3).ready
    assert not mosaic_readiness(state, mosaic, 4).ready


def test_mosaic_rule_failed_tiles(state: StateService) -> None:
    mosaic = PSOCTMosaicId("p", 1, 2)
    batches = [PSOCTBatchId("p", 1, 2, b) for b in (1, 2)]
    bad = PSOCTTileId("p", 1, 2, 2, 5)
    _complete(state, *batches, PSOCTTileId("p", 1, 2, 1, 1))
    _fail(state, bad, "tile file truncated")
    result = mosaic_readiness(state, mosaic, 2)
    assert _reasons(result) == [(bad, "failed", "tile file truncated")]
    with state.update(bad) as node:
        node.mark_pending()
    assert mosaic_readiness(state, mosaic, 2).ready
    _fail(state, bad, "again")
    with state.update(batches[1]) as node:
        node.mark_skipped("column outside tissue")
    assert mosaic_readiness(state, mosaic, 2).ready
    with state.update(batches[1]) as node:
        node.mark_completed()
    with state.update(bad) as node:
        node.mark_skipped("operator")
    assert mosaic_readiness(state, mosaic, 2).ready


def test_batch_rule_tiles(state: StateService) -> None:
    batch = PSOCTBatchId("p", 2, 3, 2)
    tiles = [PSOCTTileId("p", 2, 3, 2, t) for t in (4, 5, 6)]
    state.register(tiles)
    _complete(state, tiles[0])
    _fail(state, tiles[1], "NaN in spectrum")
    with state.update(tiles[2]) as node:
        node.mark_skipped("outside tissue")
    assert _reasons(batch_readiness(state, batch, [4, 5, 6])) == [
        (tiles[1], "failed", "NaN in spectrum")]
    with state.update(tiles[1]) as node:
        node.mark_started()
        node.mark_completed()
    assert batch_readiness(state, batch, [4, 5, 6]).ready


def test_slice_rule(state: StateService) -> None:
    slice_ = PSOCTSliceId("p", 2)
    m3, m4 = PSOCTMosaicId("p", 2, 3), PSOCTMosaicId("p", 2, 4)
    assert _reasons(slice_readiness(state, slice_, [3, 4])) == [(m3, "missing", None),
                                                                (m4, "missing", None)]
    with state.update(m3) as node:
        node.set_flag("enface_stitched")
    with state.update(m4) as node:
        node.mark_started()
    assert _reasons(slice_readiness(state, slice_, [3, 4])) == [
        (m4, "enface_stitched not set (running)", None)]
    with state.update(m4) as node:
        node.set_flag("enface_stitched")
        node.mark_failed("volume stitch out of memory")
    assert slice_readiness(state, slice_, [3, 4]).failed[0].error == "volume stitch out of memory"
    with state.update(m4) as node:
        node.mark_skipped("volume not needed")
    assert slice_readiness(state, slice_, [3, 4]).ready
    assert not slice_readiness(state, slice_, []).ready


def _psoct_config(tmp_path: Path) -> PSOCTScanConfig:
    return PSOCTScanConfig(
        project_name="p", project_base_path=tmp_path,
        acquisition=PSOCTAcquisitionParams(grid_size_x_normal=2, grid_size_x_tilted=1,
                                           grid_size_y=3),
    )


def test_rules_take_their_counts_from_the_config(state: StateService, tmp_path: Path) -> None:
    config = _psoct_config(tmp_path)
    normal, tilted = PSOCTMosaicId("p", 1, 1), PSOCTMosaicId("p", 1, 2)
    _complete(state, PSOCTBatchId("p", 1, 1, 1), PSOCTBatchId("p", 1, 2, 1))
    assert not readiness(state, normal, config).ready
    assert readiness(state, tilted, config).ready
    _complete(state, PSOCTBatchId("p", 1, 1, 2))
    assert readiness(state, normal, config).ready
    batch = PSOCTBatchId("p", 1, 1, 2)
    _complete(state, *(PSOCTTileId("p", 1, 1, 2, t) for t in (4, 5)))
    assert [b.ident.tile for b in readiness(state, batch, config).blockers] == [6]
    for mosaic in (normal, tilted):
        with state.update(mosaic) as node:
            node.set_flag("enface_stitched")
    assert readiness(state, PSOCTSliceId("p", 1), config).ready
    lsm = LSMScanConfig(project_name="q", project_base_path=tmp_path, strips_per_slice=1)
    with state.update(LSMStripId("q", 1, 1, 1)) as node:
        node.set_flag("compressed")
    assert readiness(state, LSMChannelId("q", 1, 1), lsm).ready


def test_mismatched_config_is_an_error(state: StateService, tmp_path: Path) -> None:
    lsm = LSMScanConfig(project_name="q", project_base_path=tmp_path)
    with pytest.raises(TypeError, match="PS-OCT scan config"):
        readiness(state, PSOCTMosaicId("p", 1, 1), lsm)
    with pytest.raises(TypeError, match="no readiness rule"):
        readiness(state, LSMChannelId("q", 1, 1), _psoct_config(tmp_path))
