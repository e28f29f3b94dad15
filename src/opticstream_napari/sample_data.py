"""napari sample data: small simulated acquisitions, read back through our own readers.

Each sample runs the simulator into a temporary folder, reads the raw data with the same
readers the engine uses, and removes the folder; layers come back in micrometres.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

LayerData = tuple[Any, dict[str, Any], str]

LSM_PIXEL_UM = 1.0


def lsm_sample() -> list[LayerData]:
    """One light-sheet strip (z, y, x) and its MIP, from the tiny Zyla spool simulation."""
    from opticstream_napari.io.zyla import ZylaStrip
    from opticstream_napari.simulate.lsm import lsm_preset, simulate_lsm

    with tempfile.TemporaryDirectory(prefix="opticstream-sample-") as tmp:
        config = lsm_preset(Path(tmp) / "project", "tiny")
        truth = simulate_lsm(config, Path(tmp) / "raw", slices=1, channels=1)
        strip = truth.strips[0]
        volume = ZylaStrip(strip.folder, info_file=config.info_file, crop_padding=True).read_frames()
    mip = volume.max(axis=0)
    scale = (LSM_PIXEL_UM,) * 3
    limits = [float(np.percentile(mip, 1)), float(np.percentile(mip, 99.9))]
    common = {"units": "µm", "contrast_limits": limits, "colormap": "gray"}
    return [
        (volume, {"name": f"LSM strip {strip.folder.name}", "scale": scale,
                  "axis_labels": ("z", "y", "x"), **common}, "image"),
        (mip, {"name": f"LSM strip {strip.folder.name} MIP", "scale": scale[1:],
               "axis_labels": ("y", "x"), "visible": False, **common}, "image"),
    ]
