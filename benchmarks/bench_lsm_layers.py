"""What it costs to rebuild a light-sheet slice's MIP layers each time a strip lands.

The viewer shows each camera's channel MIP growing strip by strip; every new strip MIP on disk
makes the mediator's worker thread rebuild the in-memory levels of both halves of that camera
(``lsm_slice_layer_specs``). This script writes a slice's strip MIPs one by one, at the size a
real Zyla strip gives (2048 columns; a 25 GB strip folder holds about 3000 frames), calls the
rebuild after each as the viewer does, and prints its time against the number of strips so far.
Then it runs the channel step that concatenates the strips (its time and peak memory, in a
worker process as the engine runs it) and times the switch to the stitched mosaics. Usage::

    .venv/bin/python benchmarks/bench_lsm_layers.py [--strips 100] [--columns 2048] [--frames 3000]
        [--scratch /tmp/some-unique-folder]
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import tifffile

from _machine import machine_line, peak_rss_gib
from opticstream_napari import naming
from opticstream_napari.engine.pipelines.lsm_work import stitch_channel_mip
from opticstream_napari.identity import LSMChannelId, LSMStripId
from opticstream_napari.simulate.lsm import lsm_preset
from opticstream_napari.viewer_link.lsm_layer_specs import CHANNELS, lsm_slice_layer_specs

SLICE = 1


def strip_mip(base: np.ndarray, strip: int, channel: int) -> np.ndarray:
    """A textured MIP that differs per strip and camera, without drawing random numbers each time."""
    return np.roll(base, 37 * strip + 1000 * channel, axis=1) + np.uint16(strip)


def run(scratch: Path, strips: int, columns: int, frames: int) -> None:
    config = lsm_preset(scratch / "project", "tiny").model_copy(update={"strips_per_slice": strips})
    base = np.random.default_rng(0).integers(100, 4000, size=(columns, frames), dtype=np.uint16)
    known: dict[tuple[int, str], str] = {}
    timings: list[tuple[int, float, int]] = []
    for strip in range(1, strips + 1):
        for channel in CHANNELS:
            name = naming.lsm_strip_mip_name(LSMStripId(config.project_name, SLICE, channel, strip))
            path = config.output_root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(path, strip_mip(base, strip, channel))
        start = time.perf_counter()
        found = lsm_slice_layer_specs(config, SLICE, known)
        seconds = time.perf_counter() - start
        known.update({spec.key: spec.source for spec in found.specs})
        held = sum(level.nbytes for spec in found.specs for level in spec.data)
        timings.append((strip, seconds, held))
    print(f"strip MIP {columns} × {frames} uint16 ({columns * frames * 2 / 2**20:.1f} MiB), {strips} strips, "
          f"2 cameras; per update: both cameras' halves rebuilt")
    marks = sorted({1, strips // 4, strips // 2, 3 * strips // 4, strips} - {0})
    for strip, seconds, held in timings:
        if strip in marks:
            print(f"  after strip {strip:4d}: {seconds * 1e3:7.1f} ms, levels made {held / 2**20:6.1f} MiB")
    seconds = [s for _, s, _ in timings]
    print(f"  all updates: median {statistics.median(seconds) * 1e3:.1f} ms, "
          f"longest {max(seconds) * 1e3:.1f} ms, total {sum(seconds):.1f} s")
    start = time.perf_counter()
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        for channel in CHANNELS:
            pool.submit(stitch_channel_mip, config.model_dump(mode="json"),
                        LSMChannelId(config.project_name, SLICE, channel).to_dict()).result()
    child_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    print(f"  channel step (both cameras, in a worker process as the engine runs it): "
          f"{time.perf_counter() - start:.1f} s, the worker's peak RSS {child_gib:.2f} GiB "
          f"(one camera's strip MIPs: {strips * columns * frames * 2 / 2**30:.2f} GiB)")
    start = time.perf_counter()
    found = lsm_slice_layer_specs(config, SLICE, known)
    seconds_final = time.perf_counter() - start
    held = sum(level.nbytes for spec in found.specs for level in spec.data)
    print(f"  stitched mosaics replace the strips: {seconds_final * 1e3:.1f} ms, levels made {held / 2**20:.1f} MiB")
    print(f"peak RSS {peak_rss_gib():.2f} GiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strips", type=int, default=100)
    parser.add_argument("--columns", type=int, default=2048)
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--scratch", type=Path, default=None, help="an existing folder for the strip MIPs")
    args = parser.parse_args()
    print(machine_line())
    scratch = Path(tempfile.mkdtemp(prefix="opticstream-bench-lsm-", dir=args.scratch))
    try:
        run(scratch, args.strips, args.columns, args.frames)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
