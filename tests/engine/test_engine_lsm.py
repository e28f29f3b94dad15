"""The engine on a simulated light-sheet acquisition: strips → channel MIPs → slice."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import tifffile
from engine_support import FAST

from opticstream_napari import naming
from opticstream_napari.engine.executors import LocalExecutor
from opticstream_napari.engine.messages import ChannelStitched, SliceDone
from opticstream_napari.engine.runner import Engine, Until
from opticstream_napari.identity import LSMChannelId
from opticstream_napari.io.ome_zarr import is_complete, open_pyramid
from opticstream_napari.simulate.lsm import lsm_preset, simulate_lsm
from opticstream_napari.state.service import StateService
from opticstream_napari.state.summary import summarize


def test_strips_are_compressed_and_channel_mips_concatenated(tmp_path: Path, database_url: str) -> None:
    config = lsm_preset(tmp_path / "project", "tiny")
    truth = simulate_lsm(config, tmp_path / "raw", slices=1)
    messages: list[object] = []
    with StateService.connect(database_url) as state:
        executor = LocalExecutor(2)
        try:
            engine = Engine(config, tmp_path / "raw", state, executor, **FAST)  # type: ignore[arg-type]
            engine.add_listener(messages.append)
            report = engine.run(until=Until.IDLE)
        finally:
            executor.close()
        summary = summarize(state, engine.project)[1]
        names = defaultdict(list)
        for record in state.events(engine.project):
            names[record.ident].append(record.name.rsplit(".", 1)[1])

    assert report.completed == 4 and not report.failed
    assert all(summary.done(level) == summary.total(level) > 0 for level in summary.counts)
    strips = [ident for ident in names if ident.level == "strip"]
    assert len(strips) == 4
    assert all(names[s] == ["pending", "ready", "running", "compressed", "completed"] for s in strips)
    channels = [ident for ident in names if ident.level == "channel"]
    assert all(names[c] == ["pending", "ready", "running", "mip_stitched", "volume_stitched", "completed"]
               for c in channels)
    assert sum(isinstance(m, ChannelStitched) for m in messages) == 2
    assert sum(isinstance(m, SliceDone) for m in messages) == 1

    root = config.output_root
    height, width = truth.camera.metadata.aoi_height, truth.camera.metadata.aoi_width
    for strip in truth.strips:
        zarr = root / naming.lsm_strip_zarr_name(strip.identity)
        assert is_complete(zarr)
        np.testing.assert_array_equal(open_pyramid(zarr).read(0)[:height, :width], strip.load_block())
        np.testing.assert_array_equal(tifffile.imread(root / naming.lsm_strip_mip_name(strip.identity)),
                                      strip.load_mip())
    for channel_id in (1, 2):
        channel = LSMChannelId(config.project_name, 1, channel_id)
        mips = [s.load_mip() for s in sorted(truth.strips, key=lambda s: s.identity.strip)
                if s.identity.channel == channel_id]
        for index, half in enumerate(("ch1", "ch2")):
            expected = np.concatenate([np.array_split(m, 2, axis=0)[index] for m in mips], axis=0)
            found = tifffile.imread(root / naming.lsm_channel_mip_name(channel, half))
            np.testing.assert_array_equal(found, expected)
