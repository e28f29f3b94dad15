"""The LSM channel step: camera halves of the strip MIPs concatenated, with previews that always fit a JPEG."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from opticstream_napari import naming
from opticstream_napari.engine.pipelines.lsm_work import PREVIEW_MAX_SIDE, stitch_channel_mip
from opticstream_napari.identity import LSMChannelId, LSMStripId
from opticstream_napari.io.mip_tiff import MipShapeError
from opticstream_napari.simulate.lsm import lsm_preset


def test_a_channel_mosaic_taller_than_a_jpeg_still_gets_its_previews(tmp_path: Path) -> None:
    config = lsm_preset(tmp_path / "project", "tiny").model_copy(update={"strips_per_slice": 3})
    root = config.output_root
    mips = []
    for strip in (1, 2, 3):
        mip = np.full((44_000, 4), 100 * strip, np.uint16)  # halves of 22,000 rows: 66,000 rows in all
        path = root / naming.lsm_strip_mip_name(LSMStripId(config.project_name, 1, 1, strip))
        path.parent.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(path, mip)
        mips.append(mip)
    channel = LSMChannelId(config.project_name, 1, 1)

    result = stitch_channel_mip(config.model_dump(mode="json"), channel.to_dict())

    for index, half in enumerate(("ch1", "ch2")):
        mosaic = tifffile.imread(result["outputs"][half])
        np.testing.assert_array_equal(mosaic, np.concatenate([np.array_split(m, 2)[index] for m in mips]))
        with Image.open(root / naming.lsm_channel_mip_name(channel, half, "jpg")) as image:
            assert image.format == "JPEG" and image.size[1] == PREVIEW_MAX_SIDE
            rows = np.asarray(image)[:, 0]
        assert rows[100] < rows[PREVIEW_MAX_SIDE // 2] < rows[-100], "strips 1, 2, 3 from top to bottom"


def test_a_strip_of_another_size_fails_the_channel_naming_it_and_writes_nothing(tmp_path: Path) -> None:
    config = lsm_preset(tmp_path / "project", "tiny").model_copy(update={"strips_per_slice": 3})
    root = config.output_root
    paths = [root / naming.lsm_strip_mip_name(LSMStripId(config.project_name, 1, 1, strip)) for strip in (1, 2, 3)]
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    for path, frames in zip(paths, (30, 29, 30), strict=True):
        tifffile.imwrite(path, np.ones((40, frames), np.uint16))
    before = sorted(root.iterdir())

    expected = f"{paths[1]}: its MIP is (40, 29), {paths[0].name}'s is (40, 30)"
    with pytest.raises(MipShapeError, match=re.escape(expected)):
        stitch_channel_mip(config.model_dump(mode="json"), LSMChannelId(config.project_name, 1, 1).to_dict())

    assert sorted(root.iterdir()) == before, "no mosaic, preview or temporary"


def test_odd_camera_columns_give_the_first_half_the_middle_row(tmp_path: Path) -> None:
    config = lsm_preset(tmp_path / "project", "tiny").model_copy(update={"strips_per_slice": 2})
    root = config.output_root
    mips = [np.arange(5 * 3, dtype=np.uint16).reshape(5, 3) + 100 * strip for strip in (1, 2)]
    for strip, mip in zip((1, 2), mips, strict=True):
        path = root / naming.lsm_strip_mip_name(LSMStripId(config.project_name, 1, 1, strip))
        path.parent.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(path, mip)

    result = stitch_channel_mip(config.model_dump(mode="json"), LSMChannelId(config.project_name, 1, 1).to_dict())

    np.testing.assert_array_equal(tifffile.imread(result["outputs"]["ch1"]), np.concatenate([m[:3] for m in mips]))
    np.testing.assert_array_equal(tifffile.imread(result["outputs"]["ch2"]), np.concatenate([m[3:] for m in mips]))
