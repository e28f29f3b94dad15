"""The en-face mosaic step's tile reader: each tile read once per modality, one modality held at a time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from opticstream_napari.engine.pipelines import psoct_mosaic
from opticstream_napari.engine.pipelines.psoct_mosaic import TileMaps, mosaic_tiles, pixel_size_um
from opticstream_napari.engine.pipelines.psoct_tile import tile_output_path
from opticstream_napari.identity import PSOCTMosaicId
from opticstream_napari.io.nifti import write_enface_nifti
from opticstream_napari.simulate.psoct import psoct_preset


def test_tile_maps_keep_one_modality_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = psoct_preset(tmp_path / "project", "tiny")
    mosaic = PSOCTMosaicId(config.project_name, 1, 1)
    first, second = mosaic_tiles(config, mosaic)[:2]
    for tile in (first, second):
        for value, modality in enumerate(("aip", "ret")):
            path = tile_output_path(config, tile, modality)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_enface_nifti(path, np.full((4, 5), 10 * tile.tile + value, np.float32), pixel_size_um(config))
    reads: list[str] = []
    original = psoct_mosaic.read_enface_nifti
    monkeypatch.setattr(psoct_mosaic, "read_enface_nifti", lambda path: reads.append(Path(path).name) or original(path))
    maps = TileMaps(config, mosaic)

    assert maps(first.tile, "aip")[0, 0] == 10 * first.tile
    assert maps(second.tile, "aip")[0, 0] == 10 * second.tile
    assert maps(first.tile, "aip")[0, 0] == 10 * first.tile and len(reads) == 2, "read once while AIP is in play"
    assert maps(first.tile, "ret")[0, 0] == 10 * first.tile + 1
    assert maps(first.tile, "aip")[0, 0] == 10 * first.tile and len(reads) == 4, "RET dropped the AIP maps"
    assert maps(len(mosaic_tiles(config, mosaic)), "aip") is None, "a tile not written yet"
