"""The engine on a simulated light-sheet acquisition: strips → channel MIPs (and volumes) → slice."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
from engine_support import FAST

from opticstream_napari import naming
from opticstream_napari.config import LSMScanConfig
from opticstream_napari.engine.executors import LocalExecutor
from opticstream_napari.engine.messages import ChannelStitched, ChannelVolumeStitched, SliceDone
from opticstream_napari.engine.runner import Engine, RunReport, Until
from opticstream_napari.identity import Identity, LSMChannelId, LSMStripId
from opticstream_napari.io.ome_zarr import is_complete, open_pyramid
from opticstream_napari.simulate.lsm import lsm_preset, simulate_lsm
from opticstream_napari.state.service import StateService
from opticstream_napari.state.summary import SliceSummary, summarize


@dataclass
class _Run:
    """What one engine run left: its report, its messages, each node's events and the summary."""

    report: RunReport
    messages: list[object]
    events: dict[Identity, list[str]]
    summary: SliceSummary


def _run(config: LSMScanConfig, raw: Path, database_url: str) -> _Run:
    messages: list[object] = []
    with StateService.connect(database_url) as state:
        executor = LocalExecutor(2)
        try:
            engine = Engine(config, raw, state, executor, **FAST)  # type: ignore[arg-type]
            engine.add_listener(messages.append)
            report = engine.run(until=Until.IDLE)
        finally:
            executor.close()
        names: dict[Identity, list[str]] = defaultdict(list)
        for record in state.events(engine.project):
            names[record.ident].append(record.name.rsplit(".", 1)[1])
        return _Run(report, messages, names, summarize(state, engine.project)[1])


def test_strips_are_compressed_and_channel_mips_concatenated(tmp_path: Path, database_url: str) -> None:
    config = lsm_preset(tmp_path / "project", "tiny")
    truth = simulate_lsm(config, tmp_path / "raw", slices=1)
    run = _run(config, tmp_path / "raw", database_url)
    report, messages, names, summary = run.report, run.messages, run.events, run.summary

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


def test_with_stitch_volume_each_channel_completes_with_its_volumes(tmp_path: Path, database_url: str) -> None:
    config = lsm_preset(tmp_path / "project", "tiny").model_copy(
        update={"stitch_volume": True, "skip_channel_volume_zarr_validation": False,
                "channel_volume_zarr_size_threshold": 1e-5}
    )
    simulate_lsm(config, tmp_path / "raw", slices=1)
    run = _run(config, tmp_path / "raw", database_url)
    report, messages, names = run.report, run.messages, run.events

    assert report.completed == 4 and not report.failed
    channels = [ident for ident in names if ident.level == "channel"]
    assert len(channels) == 2
    assert all(names[c] == ["pending", "ready", "running", "mip_stitched", "volume_stitched", "completed"]
               for c in channels)
    volumes = [m for m in messages if isinstance(m, ChannelVolumeStitched)]
    assert sorted(m.channel.channel for m in volumes) == [1, 2]
    assert sum(isinstance(m, SliceDone) for m in messages) == 1

    root = config.output_root
    for message in volumes:
        channel = message.channel
        idents = [LSMStripId(channel.project, channel.slice, channel.channel, s)
                  for s in range(1, config.strips_per_slice + 1)]
        strips = [open_pyramid(root / naming.lsm_strip_zarr_name(ident)).read(0) for ident in idents]
        for index, half in enumerate(("ch1", "ch2")):
            path = root / naming.lsm_channel_volume_name(channel, half)
            assert message.outputs[half] == str(path) and is_complete(path)
            volume = open_pyramid(path).read(0)
            expected = np.concatenate([np.array_split(s, 2, axis=1)[index] for s in strips], axis=1)
            np.testing.assert_array_equal(volume, expected)
            mip = tifffile.imread(root / naming.lsm_channel_mip_name(channel, half))
            np.testing.assert_array_equal(volume.max(axis=0), mip)
