"""Discovery: which raw files and folders are units of work, under which identity, and when."""

from __future__ import annotations

from pathlib import Path

import pytest
from engine_support import tiny_config

from opticstream_napari import naming
from opticstream_napari.engine.discover import LSMDiscovery, MosaicRanges, PSOCTDiscovery
from opticstream_napari.engine.pipelines.psoct_tile import expected_raw_bytes
from opticstream_napari.identity import LSMStripId, PSOCTTileId


def test_mosaic_ranges() -> None:
    ranges = MosaicRanges.parse("1:2, 5:6")
    assert [m for m in range(1, 8) if m in ranges] == [1, 2, 5, 6]
    assert 999_999 in MosaicRanges.parse(None) and 3 in MosaicRanges.parse("3")
    assert str(ranges) == "1:2,5:6"
    for bad in ("a:b", "2:1", "0:3"):
        with pytest.raises(ValueError, match="mosaic range"):
            MosaicRanges.parse(bad)


def _write(folder: Path, name: str, size: int) -> Path:
    path = folder / name
    path.write_bytes(b"\0" * size)
    return path


def test_psoct_candidates_are_tiles_by_identity(tmp_path: Path) -> None:
    config = tiny_config(tmp_path)
    full = expected_raw_bytes(config, "normal")
    _write(tmp_path, naming.psoct_spectral_tile_name(1, 4), full)
    _write(tmp_path, naming.psoct_spectral_tile_name(3, 1), full // 2)
    _write(tmp_path, naming.psoct_spectral_tile_name(2, 1), expected_raw_bytes(config, "tilted"))
    _write(tmp_path, naming.psoct_complex_tile_name(1, 5), full)  # another format: not this config's input
    _write(tmp_path, naming.processed_tile_name(1, 6, "aip"), full)
    _write(tmp_path, "." + naming.psoct_spectral_tile_name(1, 6) + ".partial-1234", full)
    _write(tmp_path, naming.psoct_spectral_tile_name(1, 99), full)  # outside the 2×3 grid
    found = PSOCTDiscovery(config, tmp_path, slice_offset=1, incomplete_grace=7.0)()
    project = config.project_name
    assert set(found) == {PSOCTTileId(project, 2, 3, 2, 4), PSOCTTileId(project, 3, 5, 1, 1),
                          PSOCTTileId(project, 2, 4, 1, 1)}
    assert found[PSOCTTileId(project, 2, 3, 2, 4)].settle_seconds is None
    assert found[PSOCTTileId(project, 3, 5, 1, 1)].settle_seconds == 7.0  # still growing
    only = PSOCTDiscovery(config, tmp_path, MosaicRanges.parse("2:2"))()
    assert set(only) == {PSOCTTileId(project, 1, 2, 1, 1)}


def test_lsm_candidates_are_strip_folders_with_enough_files(tmp_path: Path) -> None:
    from opticstream_napari.simulate.lsm import lsm_preset

    config = lsm_preset(tmp_path / "project", "tiny")
    config.min_strip_files = 3
    for name, files in (("Run2_C2_1", 4), ("Run2", 3), ("processed_Run1", 5), ("notastrip", 5)):
        (tmp_path / name).mkdir()
        for index in range(files):
            _write(tmp_path / name, naming.spool_file_name(index), 10)
    found = LSMDiscovery(config, tmp_path, slice_offset=1)()
    strip = LSMStripId(config.project_name, 3, 2, 2)
    assert list(found) == [strip]
    assert found[strip].source == tmp_path / "Run2_C2_1" and len(found[strip].paths) == 4
