"""The LSM channel step: camera halves of the strip MIPs concatenated, with previews that always fit a JPEG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from opticstream_napari import naming
from opticstream_napari.engine.pipelines.lsm_work import PREVIEW_MAX_SIDE, stitch_channel_mip
from opticstream_napari.identity import LSMChannelId, LSMStripId
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
