"""Stitch an LSM channel's volumes from its strip OME-Zarrs, beside plain writers of the same bytes.

The channel volume step (``stitch_volume`` on) reads every strip's full-resolution level and
writes each camera half as its own OME-Zarr pyramid. This script writes ``--strips`` strip
stores of LSM-like uint16 data (camera rows × 2048 columns × frames, the data the issue's
anchors were measured on), then, in one run:

1. **fuse**: ``stitch_channel_volume``, the strip stores' pages evicted from the page cache
   first, ``os.sync()`` included: reading and decompressing the strips, every pyramid level;
2. **raw**: one tensorstore ``write`` per half of the same level-0 bytes from memory, to an
   array with the same chunks, shards and codec (no reading, no pyramid);
3. **write_image**: ome-zarr-py ``write_image`` of the same arrays with the same chunks, shards
   and codec, beside our ``write_pyramid`` of them.

Rates are level-0 bytes per second, best of ``--repeat`` runs. Goals (issue 5): fuse ≥ 0.7×
raw and ≥ 4× ``write_image``. Usage::

    .venv/bin/python benchmarks/bench_lsm_volume.py [--strips 2] [--rows 256] [--frames 1024]
        [--codec zstd] [--repeat 2] [--scratch /tmp/some-folder]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from _machine import machine_line, peak_rss_gib
from bench_fuse_pyramid import Phase, best, ome_zarr_write_image, our_write_pyramid, ratio, raw_write, report
from bench_lsm_strip import evict, lsm_like_frames
from opticstream_napari import naming
from opticstream_napari.config import LSMScanConfig
from opticstream_napari.config.zarr import Codec, ZarrConfig
from opticstream_napari.engine.pipelines.lsm_work import VOXEL_UM, stitch_channel_volume
from opticstream_napari.identity import LSMChannelId, LSMStripId
from opticstream_napari.io.ome_zarr import open_pyramid, write_pyramid
from opticstream_napari.io.ome_zarr_layout import plan_levels

CHANNEL = LSMChannelId("bench", 1, 1)
COLUMNS = 2048


def write_strips(config: LSMScanConfig, rows: int, frames: int) -> None:
    """Strip stores as the strip step leaves them: (camera rows, columns, frames) uint16 pyramids."""
    for number in range(1, config.strips_per_slice + 1):
        blocks = lsm_like_frames(rows, COLUMNS, frames, 64, seed=number)
        volume = np.concatenate([block.transpose(1, 2, 0) for block in blocks], axis=2)
        strip = LSMStripId(CHANNEL.project, CHANNEL.slice, CHANNEL.channel, number)
        write_pyramid(config.output_root / naming.lsm_strip_zarr_name(strip), volume, VOXEL_UM,
                      zarr_config=config.zarr_config, overwrite=True)


def fuse(config: LSMScanConfig) -> tuple[Phase, dict[str, str]]:
    for old in config.output_root.glob("*_volume.ome.zarr"):
        shutil.rmtree(old)
    evict(config.output_root)
    with Phase() as phase:
        result = stitch_channel_volume(config.model_dump(mode="json"), CHANNEL.to_dict())
    return phase, result["outputs"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strips", type=int, default=2)
    parser.add_argument("--rows", type=int, default=256, help="camera rows (z) of each strip")
    parser.add_argument("--frames", type=int, default=1024)
    parser.add_argument("--codec", choices=[c.value for c in Codec], default="zstd")
    parser.add_argument("--clevel", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=2, help="best of N runs per phase")
    parser.add_argument("--scratch", type=Path, default=None)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-lsm-volume-", dir=args.scratch))
    zarr_config = ZarrConfig(codec=Codec(args.codec), clevel=args.clevel)
    config = LSMScanConfig(project_name=CHANNEL.project, project_base_path=scratch / "project",
                           strips_per_slice=args.strips, zarr_config=zarr_config)
    label = f"{args.codec}-{args.clevel}"
    try:
        print(machine_line())
        start = time.perf_counter()
        write_strips(config, args.rows, args.frames)
        print(f"{args.strips} strips of ({args.rows}, {COLUMNS}, {args.frames}) uint16 written in "
              f"{time.perf_counter() - start:.0f} s; chunk {zarr_config.chunk}, shard {zarr_config.shard}, {label}, "
              f"best of {args.repeat} runs per phase\n")
        phase, outputs = best_fuse(config, args.repeat)
        halves = [open_pyramid(outputs[half]) for half in ("ch1", "ch2")]
        nbytes = sum(int(np.prod(h.shape)) * h.dtype.itemsize for h in halves)
        report(f"fuse (channel volumes) {label}", phase, nbytes, f"({len(halves[0].levels)} levels, both halves)")
        print(f"  peak RSS so far: {peak_rss_gib():.2f} GiB")
        arrays = [h.read(0) for h in halves]
        level0 = plan_levels(arrays[0].shape, VOXEL_UM, zarr_config)[0]

        def raw() -> Phase:
            return _combined([raw_write(scratch / f"raw-{i}.zarr", a, zarr_config, level0)
                              for i, a in enumerate(arrays)])

        def image() -> Phase:
            return _combined([ome_zarr_write_image(scratch / f"wi-{i}.ome.zarr", a, zarr_config, level0)
                              for i, a in enumerate(arrays)])

        def ours() -> Phase:
            return _combined([our_write_pyramid(scratch / f"ours-{i}.ome.zarr", a, zarr_config)
                              for i, a in enumerate(arrays)])

        raw_phase, image_phase, ours_phase = best(raw, args.repeat), best(image, args.repeat), best(ours, args.repeat)
        report(f"raw tensorstore {label}", raw_phase, nbytes, "(level 0 from memory)")
        report(f"ome-zarr-py write_image {label}", image_phase, nbytes, "(from memory)")
        report(f"our write_pyramid {label}", ours_phase, nbytes, "(from memory)")
        ratio(f"fuse / raw ({label})", (phase, nbytes), (raw_phase, nbytes), 0.7)
        ratio(f"fuse / write_image ({label})", (phase, nbytes), (image_phase, nbytes), 4)
        ratio(f"write_pyramid / write_image ({label})", (ours_phase, nbytes), (image_phase, nbytes), 4)
        print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def best_fuse(config: LSMScanConfig, repeat: int) -> tuple[Phase, dict[str, str]]:
    return min((fuse(config) for _ in range(repeat)), key=lambda run: run[0].wall)


def _combined(phases: list[Phase]) -> Phase:
    """Several phases as one: wall times add, cores weighted by them."""
    total = Phase()
    total.wall = sum(p.wall for p in phases)
    total.cores = sum(p.wall * p.cores for p in phases) / total.wall
    return total


if __name__ == "__main__":
    main()
