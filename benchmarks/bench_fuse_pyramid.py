"""Fuse synthetic volume tiles into a multiscale OME-Zarr and compare with plain writers.

Run: ``.venv/bin/python benchmarks/bench_fuse_pyramid.py [--codec zstd --codec lz4]``.

For each codec, in one run:

1. **fuse**: blend a 3×3 grid of jittered (z, y, x) float32 tiles (synthesised on read, see
   :class:`SyntheticTiles`) region by region and write every pyramid level (``fill_pyramid`` +
   ``blend_region``), ``os.sync()`` included;
2. **raw**: write the same level-0 bytes with one tensorstore ``write`` to an array with the
   same chunks, shards and codec (no blending, no pyramid), ``os.sync()`` included;
3. **write_image** (first codec only): ome-zarr-py ``write_image`` of the same level-0 array
   (or, with ``--crop``, of a (y, x) crop of it) with the same chunks, shards and codec, beside
   our ``write_pyramid`` of the same array.

Rates are level-0 bytes per second, best of ``--repeat`` runs. The goals (issue 5): fuse ≥ 0.7× raw, ≥ 4× write_image.
Memory: peak RSS during the fuse (``resource.getrusage``), before the comparisons load the
fused array. Each phase reports CPU seconds / wall seconds, i.e. the cores it kept busy.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

import numpy as np
import tensorstore as ts

from _machine import machine_line, peak_rss_gib
from opticstream_napari.config.zarr import Codec, ZarrConfig
from opticstream_napari.io.ome_zarr import create_pyramid, fill_pyramid, write_pyramid
from opticstream_napari.io.ome_zarr_layout import LevelLayout, array_metadata, plan_levels
from opticstream_napari.processing.stitch.blend import MosaicLayout, blend_region

VOXEL_UM = (2.5, 10.0, 10.0)
GRID = 3


def disk_write_rate(folder: Path, size: int = 512 << 20) -> float:
    """A dd-like figure: write ``size`` bytes and fsync."""
    block = np.random.default_rng(0).integers(0, 255, size, dtype=np.uint8)
    path = folder / "dd.bin"
    start = time.perf_counter()
    with open(path, "wb") as handle:
        handle.write(block.data)
        handle.flush()
        os.fsync(handle.fileno())
    elapsed = time.perf_counter() - start
    path.unlink()
    return size / elapsed / 1e9


class SyntheticTiles:
    """OCT-like tiles made on read: attenuation with depth, a lateral texture of the sample,
    and per-tile speckle cut from a shared full-precision float32 noise bank.

    Tiles are synthesised instead of read from files because this VM reclaims the page cache
    aggressively: tile reads would hit the disk the fuse is writing to, and the figure is meant
    to measure blending, pyramid and writing against a raw write of the same bytes. The
    synthesis runs inside the timed fuse (an extra pass over every tile voxel).
    """

    def __init__(self, layout: MosaicLayout, depth: int, tile: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        margin = 256
        self.bank = rng.standard_normal((depth, tile + margin, tile + margin), dtype=np.float32)
        self.shifts = {key: tuple(rng.integers(0, margin, 2)) for key in layout.offsets}
        self.offsets = layout.offsets
        self.profile = (70.0 - 20.0 * np.arange(depth, dtype=np.float32) / depth)[:, None, None]

    def read(self, key: Hashable, part: tuple[slice, ...]) -> np.ndarray:
        depth, rows, cols = part
        y, x = self.offsets[key]
        sy, sx = self.shifts[key]
        yy = np.arange(y + rows.start, y + rows.stop, dtype=np.float32)[:, None]
        xx = np.arange(x + cols.start, x + cols.stop, dtype=np.float32)[None, :]
        texture = 6.0 * np.sin(yy / 37.0) * np.cos(xx / 53.0)
        noise = self.bank[depth, sy + rows.start : sy + rows.stop, sx + cols.start : sx + cols.stop]
        out = np.add(noise, texture.astype(np.float32))
        out += self.profile[depth]
        return out


def make_layout(depth: int, tile: int, overlap: float, seed: int = 0) -> MosaicLayout:
    """A 3×3 grid with sub-pixel stage jitter."""
    rng = np.random.default_rng(seed)
    step = tile * (1 - overlap)
    positions = {
        (r, c): (r * step + rng.uniform(-0.5, 0.5), c * step + rng.uniform(-0.5, 0.5))
        for r in range(GRID)
        for c in range(GRID)
    }
    return MosaicLayout.from_positions(positions, (tile, tile), overlap, depth=depth)


class Phase:
    """Wall time and CPU time of a block, with ``os.sync()`` before and after."""

    def __enter__(self) -> Phase:
        os.sync()
        self._wall = time.perf_counter()
        self._cpu = _cpu_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        os.sync()
        self.wall = time.perf_counter() - self._wall
        self.cores = (_cpu_seconds() - self._cpu) / self.wall


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def fuse(
    out: Path, layout: MosaicLayout, tiles: SyntheticTiles, config: ZarrConfig, workers: int
) -> tuple[Phase, int, float]:
    """Blend and write every level; returns the phase, the level count and blend seconds."""
    blend_seconds = [0.0]
    read = tiles.read

    def produce(region: tuple[slice, ...]) -> np.ndarray:
        start = time.perf_counter()
        data = blend_region(layout, region, read)
        blend_seconds[0] += time.perf_counter() - start
        return data

    with Phase() as phase:
        pyramid = create_pyramid(out, layout.shape, np.float32, VOXEL_UM, zarr_config=config,
                                 overwrite=True)
        fill_pyramid(pyramid, produce, workers=workers)
        pyramid.mark_complete()
    return phase, len(pyramid.levels), blend_seconds[0]


def raw_write(out: Path, data: np.ndarray, config: ZarrConfig, level: LevelLayout) -> Phase:
    spec = {
        "driver": "zarr3",
        "kvstore": {"driver": "file", "path": str(out)},
        "metadata": array_metadata(level, data.dtype, ("z", "y", "x"), config,
                                   float("nan") if data.dtype.kind == "f" else 0),
    }
    with Phase() as phase:
        array = ts.open(spec, create=True, delete_existing=True).result()
        array.write(data).result()
    return phase


def ome_zarr_write_image(out: Path, data: np.ndarray, config: ZarrConfig, level: LevelLayout) -> Phase:
    import zarr
    from ome_zarr.writer import write_image
    from zarr.codecs import BloscCodec

    compressors = (
        [] if config.codec is Codec.NONE
        else [BloscCodec(cname=str(config.codec), clevel=config.clevel, shuffle="shuffle")]
    )
    options: dict[str, Any] = {"chunks": level.chunk, "compressors": compressors}
    if level.shard is not None:
        options["shards"] = level.shard
    with Phase() as phase:
        group = zarr.open_group(str(out), mode="w")
        write_image(data, group, axes="zyx", storage_options=options)
    return phase


def our_write_pyramid(out: Path, data: np.ndarray, config: ZarrConfig) -> Phase:
    with Phase() as phase:
        write_pyramid(out, data, VOXEL_UM, zarr_config=config, overwrite=True)
    return phase


def best(run: Callable[[], Phase], repeat: int) -> Phase:
    """The fastest of ``repeat`` runs: the machine is shared, so slower runs measure others."""
    return min((run() for _ in range(repeat)), key=lambda phase: phase.wall)


def report(name: str, phase: Phase, nbytes: int, extra: str = "") -> None:
    rate = nbytes / phase.wall / 1e9
    print(
        f"  {name:<28} {nbytes / 2**30:6.2f} GiB {phase.wall:7.2f} s {rate:6.3f} GB/s "
        f"{phase.cores:4.2f} cores {extra}"
    )


def ratio(name: str, ours: tuple[Phase, int], theirs: tuple[Phase, int], goal: float) -> None:
    """Ours over theirs in bytes per wall second, and per CPU second (what the ratio would be
    if both phases had had the same cores: the machine is shared, so this one is steadier)."""
    (a, a_bytes), (b, b_bytes) = ours, theirs
    by_wall = (a_bytes / a.wall) / (b_bytes / b.wall)
    by_cpu = (a_bytes / (a.wall * a.cores)) / (b_bytes / (b.wall * b.cores))
    print(f"  {name} = {by_wall:.2f} by wall time, {by_cpu:.2f} by CPU time  (goal >= {goal})")


def _label(config: ZarrConfig) -> str:
    return "none" if config.codec is Codec.NONE else f"{config.codec}-{config.clevel}"


def compare(
    scratch: Path,
    fused_path: Path,
    config: ZarrConfig,
    fused: tuple[Phase, int],
    write_image: bool,
    crop: int | None,
    repeat: int,
) -> None:
    """Raw tensorstore write of the fused level 0; optionally write_image of it (or of a crop)."""
    label = _label(config)
    level0_data = ts.open({"driver": "zarr3", "kvstore": {"driver": "file",
                           "path": str(fused_path / "0")}}).result().read().result()
    level0 = plan_levels(level0_data.shape, VOXEL_UM, config)[0]
    raw = best(lambda: raw_write(scratch / f"raw-{label}.zarr", level0_data, config, level0),
               repeat)
    report(f"raw tensorstore {label}", raw, level0_data.nbytes)
    ratio(f"fuse / raw ({label})", fused, (raw, level0_data.nbytes), 0.7)
    if write_image:
        small = level0_data if crop is None else np.ascontiguousarray(level0_data[:, :crop, :crop])
        small_level = plan_levels(small.shape, VOXEL_UM, config)[0]
        image = best(lambda: ome_zarr_write_image(
            scratch / f"wi-{label}.ome.zarr", small, config, small_level), repeat)
        report(f"ome-zarr-py write_image {label}", image, small.nbytes,
               "(y, x downsampled only, 5 levels)")
        ours = best(lambda: our_write_pyramid(scratch / f"ours-{label}.ome.zarr", small, config),
                    repeat)
        report(f"our write_pyramid {label}", ours, small.nbytes, "(same array)")
        ratio(f"fuse / write_image ({label})", fused, (image, small.nbytes), 4)
        ratio(f"write_pyramid / write_image ({label})", (ours, small.nbytes),
              (image, small.nbytes), 4)
    for path in scratch.glob(f"*-{label}*"):
        shutil.rmtree(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codec", action="append", choices=[c.value for c in Codec])
    parser.add_argument("--clevel", type=int, default=5)
    parser.add_argument("--depth", type=int, default=64)
    parser.add_argument("--tile", type=int, default=800)
    parser.add_argument("--overlap", type=float, default=0.1)
    parser.add_argument("--chunk", type=int, default=128)
    parser.add_argument("--shard", type=int, default=512)
    parser.add_argument("--crop", type=int, default=None,
                        help="compare with write_image on a (y, x) crop of this edge, not the whole mosaic")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2, help="best of N runs per phase")
    parser.add_argument("--scratch", type=Path, default=None)
    args = parser.parse_args(argv)
    codecs = args.codec or ["zstd", "lz4"]
    scratch = Path(tempfile.mkdtemp(prefix="bench-fuse-", dir=args.scratch))
    try:
        print(machine_line())
        print(f"disk: {disk_write_rate(scratch):.2f} GB/s (512 MiB write + fsync)")
        layout = make_layout(args.depth, args.tile, args.overlap)
        tiles = SyntheticTiles(layout, args.depth, args.tile)
        print(f"mosaic {layout.shape} float32 = {np.prod(layout.shape) * 4 / 2**30:.2f} GiB from "
              f"{len(layout.offsets)} tiles of {(args.depth, args.tile, args.tile)}, "
              f"overlap {args.overlap:.0%}, voxel {VOXEL_UM} µm")
        configs = [
            ZarrConfig(chunk=args.chunk, shard=args.shard, codec=Codec(c), clevel=args.clevel)
            for c in codecs
        ]
        print(f"chunk {args.chunk}, shard {args.shard}, {args.workers} workers, "
              f"best of {args.repeat} runs per phase\n")
        fused: list[tuple[ZarrConfig, Path, Phase]] = []
        nbytes = int(np.prod(layout.shape)) * 4
        for config in configs:
            path = scratch / f"fused-{_label(config)}.ome.zarr"
            runs = [fuse(path, layout, tiles, config, args.workers) for _ in range(args.repeat)]
            phase, levels, blend_s = min(runs, key=lambda run: run[0].wall)
            report(f"fuse {_label(config)}", phase, nbytes,
                   f"({levels} levels, blend {blend_s:.1f} thread-s)")
            fused.append((config, path, phase))
        print(f"peak RSS while fusing: {peak_rss_gib():.2f} GiB (incl. the {tiles.bank.nbytes / 2**30:.2f} "
              f"GiB noise bank the tiles are made from)\n")
        for index, (config, path, phase) in enumerate(fused):
            compare(scratch, path, config, (phase, nbytes), index == 0, args.crop, args.repeat)
        print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
