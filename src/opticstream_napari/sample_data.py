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


def psoct_sample() -> list[LayerData]:
    """Ground truth of a simulated PS-OCT mosaic (demo size) with its tile footprints."""
    from opticstream_napari.simulate.psoct import psoct_preset, truth_canvases

    with tempfile.TemporaryDirectory(prefix="opticstream-sample-") as tmp:
        config = psoct_preset(Path(tmp) / "project", "demo")
    plan, canvases = truth_canvases(config, slice_id=1)[0]
    scale = plan.pixel_um[1], plan.pixel_um[0]
    common = {"scale": scale, "units": "µm", "axis_labels": ("y", "x")}
    layers: list[LayerData] = [
        (canvases["aip"].T, {"name": "truth AIP (dB)", "colormap": "gray",
                             "contrast_limits": [40.0, 100.0], **common}, "image"),
        (canvases["ret"].T, {"name": "truth RET (°)", "colormap": "magma", "visible": False,
                             "contrast_limits": [0.0, 30.0], **common}, "image"),
        (canvases["ori"].T, {"name": "truth ORI (°)", "colormap": "twilight_shifted",
                             "contrast_limits": [-90.0, 90.0], "visible": False, **common}, "image"),
        (canvases["mask"].T.astype(np.int32), {"name": "truth tissue mask", "opacity": 0.3,
                                               "visible": False, **common}, "labels"),
    ]
    width, height = plan.tile_size
    rectangles = [
        np.array([[y, x], [y, x + width], [y + height, x + width], [y + height, x]], dtype=float)
        for x, y in (tile.true for tile in plan.tiles)
    ]
    numbers = [tile.image for tile in plan.tiles]
    layers.append((rectangles, {"name": "tile outlines", "shape_type": "rectangle", "edge_color": "cyan",
                                "face_color": "transparent", "edge_width": 1.0, "features": {"tile": numbers},
                                "text": {"string": "{tile}", "color": "cyan", "size": 9}, **common}, "shapes"))
    return layers
