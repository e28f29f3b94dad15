"""The LSM strip step at a real camera's size: spool files in, OME-Zarr pyramid and MIP out.

A Zyla strip is 2048 × 2048 frames; a 25 GB strip folder (the default
``strip_folder_size_threshold``) holds about 3000 of them, more than the page cache of a
24 GiB machine. This script writes such a strip once (LSM-like content: a smooth 100–250
background, bright blurred cells, shot noise; ``--frames`` sets its length), then runs
``compress_strip`` on it in a fresh process per run, with the strip's pages evicted from the page
cache first, so each run reads the spool files from disk as the engine would. It prints each
run's wall and CPU time, peak RSS, the bytes read from disk and the raw GB/s, and, measured in the
same run, the encoding floor: tensorstore writing the same level-0 write units from memory with
the same codec and layout (their reading left out).

``--concurrent N`` runs N strips at once, each with a 1/N share of the cores, as an executor of
N workers does (the engine's default is 2 workers). ``--compare-src DIR`` runs another
revision's ``src`` (a ``git worktree``) alternately with this one, so the two are compared under
the same load. Usage::

    .venv/bin/python benchmarks/bench_lsm_strip.py [--frames 1024] [--repeat 2] [--concurrent 1]
        [--scratch /tmp/some-folder] [--compare-src /tmp/old/src]
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from scipy import ndimage

from _machine import machine_line, peak_rss_gib
from opticstream_napari.config import LSMScanConfig
from opticstream_napari.identity import LSMStripId
from opticstream_napari.io.zyla import ZylaMetadata, ZylaStrip, write_spool_set

CAMERA = ZylaMetadata(2048, 2048, 4096, "Mono16", 16)
STRIP = LSMStripId("bench", 1, 1, 1)
_NOISE_FRAMES = 16


def lsm_like_frames(rows: int, cols: int, frames: int, per_file: int, seed: int = 0) -> Iterator[np.ndarray]:
    """LSM-like frames, ``per_file`` at a time: each is a window of one wide plane (a smooth
    100–250 background and bright blurred cells) sliding with the frame index, plus shot noise."""
    rng = np.random.default_rng(seed)
    plane = np.zeros((rows, cols + frames), np.float32)
    spots = rng.integers(0, plane.size, plane.size // 1000)
    plane.flat[spots] = rng.uniform(2_000, 20_000, spots.size)
    plane = ndimage.gaussian_filter(plane, 3)
    coarse = rng.uniform(100, 250, (-(-rows // 32), (cols + frames) // 32 + 1)).astype(np.float32)
    plane += ndimage.zoom(ndimage.gaussian_filter(coarse, 2), 32, order=1)[:rows, : cols + frames]
    shot = 2 * np.sqrt(plane)
    noise = rng.standard_normal((_NOISE_FRAMES, rows, cols), dtype=np.float32)
    for first in range(0, frames, per_file):
        block = np.empty((min(per_file, frames - first), rows, cols), np.uint16)
        for i in range(block.shape[0]):
            f = first + i
            frame = plane[:, f : f + cols] + noise[f % _NOISE_FRAMES] * shot[:, f : f + cols]
            np.clip(frame, 0, 65_535, out=frame)
            block[i] = frame
        yield block


def write_strip(folder: Path, frames: int, seed: int = 0) -> None:
    files = lsm_like_frames(CAMERA.aoi_height, CAMERA.aoi_width, frames, CAMERA.images_per_file, seed)
    write_spool_set(folder, CAMERA, files)


def evict(folder: Path) -> None:
    """Drop every file under ``folder`` from the page cache, so the next read comes from disk."""
    for path in folder.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def _disk_read() -> int:
    with open("/proc/self/io") as handle:
        return int(dict(line.split(": ") for line in handle.read().splitlines())["read_bytes"])


def _config(out: Path) -> LSMScanConfig:
    return LSMScanConfig(project_name=STRIP.project, project_base_path=out, strip_folder_size_threshold=0,
                         min_strip_files=0, compressed_min_zarr_gb=0, compressed_min_mip_mb=0)


def child(strip: Path, out: Path, threads: int) -> dict[str, float]:
    """One ``compress_strip`` in this process (whichever revision is on the path)."""
    from opticstream_napari.engine.pipelines.lsm_work import compress_strip

    share = (threads,) if "threads" in inspect.signature(compress_strip).parameters else ()
    read0, cpu0, start = _disk_read(), time.process_time(), time.perf_counter()
    result = compress_strip(_config(out).model_dump(mode="json"), STRIP.to_dict(), str(strip), *share)
    os.sync()
    wall = time.perf_counter() - start
    zarr = Path(result["outputs"]["zarr"])
    return {"wall": wall, "cpu": time.process_time() - cpu0, "rss": peak_rss_gib(),
            "read": (_disk_read() - read0) / 2**30,
            "zarr": sum(p.stat().st_size for p in zarr.rglob("*") if p.is_file()) / 2**30}


def encoding_floor(strip: Path, out: Path) -> tuple[float, float]:
    """Seconds to encode and write level 0 from memory, unit by unit (reads not timed); its bytes."""
    from opticstream_napari.io.ome_zarr import create_pyramid

    data = ZylaStrip(strip)
    config = _config(out)
    pyramid = create_pyramid(out / "floor.ome.zarr", data.shape, data.dtype, (1.0, 1.0, 1.0),
                             zarr_config=config.zarr_config.model_copy(update={"levels": 1}))
    seconds = 0.0
    for region in pyramid.write_units():
        block = data[region]
        start = time.perf_counter()
        pyramid.write_region(region, block)
        seconds += time.perf_counter() - start
    os.sync()
    return seconds, float(np.prod(data.shape)) * data.dtype.itemsize


def run_children(src: Path | None, strips: list[Path], scratch: Path) -> tuple[list[dict[str, float]], float]:
    """Compress ``strips`` at once, one process each, from cold; their results and the wall time."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(src), env.get("PYTHONPATH", "")])
    threads = max(1, len(os.sched_getaffinity(0)) // len(strips))
    children = []
    for i, strip in enumerate(strips):
        out = scratch / f"out-{i}"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        evict(strip)
    start = time.perf_counter()
    for i, strip in enumerate(strips):
        command = [sys.executable, __file__, "--child", str(strip), str(scratch / f"out-{i}"), str(threads)]
        children.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True))
    lines = [child.communicate()[0].strip().splitlines()[-1] for child in children]
    wall = time.perf_counter() - start
    if any(child.returncode for child in children):
        raise RuntimeError(f"a strip failed: return codes {[child.returncode for child in children]}")
    return [json.loads(line) for line in lines], wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1024, help="frames in the strip (3008 make 25 GB)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--scratch", type=Path, default=None, help="folder kept for the strip between runs")
    parser.add_argument("--concurrent", type=int, default=1, help="strips compressed at once")
    parser.add_argument("--compare-src", type=Path, default=None, help="another revision's src folder")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.frames % CAMERA.images_per_file:
        parser.error(f"--frames must be a multiple of {CAMERA.images_per_file} (frames per spool file)")
    if args.child:
        print(json.dumps(child(Path(args.child[0]), Path(args.child[1]), int(args.child[2]))))
        return
    print(machine_line())
    scratch = args.scratch or Path(tempfile.gettempdir()) / "opticstream-bench-lsm-strip"
    strips = [scratch / f"Run-{args.frames}-{i}" for i in range(args.concurrent)]
    for seed, strip in enumerate(strips):
        written = strip.with_name(f"{strip.name}.complete")
        if not written.is_file():
            shutil.rmtree(strip, ignore_errors=True)
            start = time.perf_counter()
            write_strip(strip, args.frames, seed)
            written.touch()
            print(f"wrote {strip.name} in {time.perf_counter() - start:.0f} s")
    try:
        raw = sum(p.stat().st_size for p in strips[0].iterdir())
        print(f"strip: {ZylaStrip(strips[0]).shape} uint16, {raw / 2**30:.2f} GiB of spool files; "
              f"{len(strips)} at once")
        revisions = [("this", None)] + ([("compared", args.compare_src)] if args.compare_src else [])
        for repeat in range(args.repeat):
            for name, src in revisions:
                results, wall = run_children(src, strips, scratch)
                for r in results:
                    print(f"run {repeat + 1} {name:8s}: {r['wall']:6.1f} s wall, {r['cpu']:6.1f} s CPU "
                          f"({r['cpu'] / r['wall']:.2f} cores), peak RSS {r['rss']:.2f} GiB, read {r['read']:.2f} "
                          f"GiB from disk, {raw / r['wall'] / 1e9:.3f} GB/s, zarr {r['zarr']:.2f} GiB "
                          f"(ratio {raw / 2**30 / r['zarr']:.2f})")
                if len(results) > 1:
                    print(f"run {repeat + 1} {name:8s}: {len(results)} strips in {wall:.1f} s, "
                          f"{len(results) * raw / wall / 1e9:.3f} GB/s together")
        floor = scratch / "out-floor"
        shutil.rmtree(floor, ignore_errors=True)
        floor.mkdir()
        seconds, level0 = encoding_floor(strips[0], floor)
        print(f"encoding floor: level 0 written from memory in {seconds:.1f} s ({level0 / seconds / 1e9:.3f} GB/s)")
    finally:
        for out in scratch.glob("out-*"):
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
