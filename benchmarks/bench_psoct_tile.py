"""PS-OCT tile reconstruction throughput: PS A-lines/s per stage and overall, 1 and 2 cores.

Reports, in one run: the FFTs alone (the ceiling), each stage on one thread, the whole tile
(spectral uint16 in the instrument's storage order -> volumes, surface, en-face out) on 1 and 2
worker threads with the exact DC median (the default) and with the sampled one, the peak memory
against the raw tile size and, with ``--write-dir``, the time to write the tile's outputs per
volume type (fsync included). Usage::

    .venv/bin/python benchmarks/bench_psoct_tile.py [--alines 350] [--blines 350] [--length 2048]
        [--write-dir /tmp/some-unique-folder]
"""

from __future__ import annotations

import argparse
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyfftw

from _machine import machine_line, peak_rss_gib
from opticstream_napari.config import PSOCTAcquisitionParams, PSOCTProcessingParams, PSOCTScanConfig
from opticstream_napari.io.psoct_outputs import write_tile_outputs
from opticstream_napari.processing.psoct import (
    Calibration,
    EnfaceParams,
    SpectralParams,
    SpectralReconstructor,
    TileResult,
    Volumes,
    reconstruct_spectral_tile,
    volume_buffers,
)
from opticstream_napari.processing.psoct.enface import enface_maps
from opticstream_napari.processing.psoct.fft import aligned_empty, k_transform
from opticstream_napari.processing.psoct.spectral import CHUNK_ALINES
from opticstream_napari.processing.psoct.surface import gradient_surface, smooth_surface


def synthetic_tile(blines: int, alines: int, length: int, seed: int = 0) -> np.ndarray:
    """Interference fringes of a few reflectors over a DC spectrum, plus noise, as uint16."""
    rng = np.random.default_rng(seed)
    k = np.arange(length, dtype=np.float32)
    dc = 2000 + 1000 * np.exp(-(((k - length / 2) / (length / 4)) ** 2))
    tile = np.empty((blines, 2, alines, length), dtype=np.uint16)
    depths = rng.uniform(60, length / 2 - 100, size=(alines, 3)).astype(np.float32)
    for b in range(blines):
        fringes = np.cos(2 * np.pi * depths[:, :, None] * (k / length) + b * 0.01).sum(axis=1)
        noise = rng.normal(0, 20, size=(2, alines, length))
        tile[b] = np.clip(dc + 300 * fringes + noise, 0, 4095).astype(np.uint16)
    return tile


def fft_only(raw: np.ndarray, rec: SpectralReconstructor, workers: int) -> tuple[float, float]:
    """Seconds for the tile's FFTs alone, in the pipeline's chunking, on inputs filled once per
    thread: (one complex transform per PS A-line, both cameras packed, as the pipeline runs
    them; two real-input transforms per PS A-line, the textbook way)."""
    blines = raw.shape[0]
    local = threading.local()

    def buffers() -> tuple[np.ndarray, np.ndarray, dict]:
        if not hasattr(local, "packed"):
            local.packed = aligned_empty((rec.alines, rec.length), np.complex64)
            local.packed.real = raw[0, 0]
            local.packed.imag = raw[0, 1]
            local.out = aligned_empty((CHUNK_ALINES, rec.length), np.complex64)
            local.real = {}
        return local.packed, local.out, local.real

    def packed(_: int) -> None:
        source, out, _plans = buffers()
        for a0 in range(0, rec.alines, CHUNK_ALINES):
            rows = min(CHUNK_ALINES, rec.alines - a0)
            k_transform(rows, rec.length)(source[a0:a0 + rows], out[:rows])

    def real(_: int) -> None:
        plans = buffers()[2]
        for a0 in range(0, rec.alines, CHUNK_ALINES):
            rows = min(CHUNK_ALINES, rec.alines - a0)
            if rows not in plans:
                source = aligned_empty((rows, rec.length), np.float32)
                source[:] = raw[0, 0, :rows]
                out = aligned_empty((rows, rec.length // 2 + 1), np.complex64)
                plans[rows] = pyfftw.FFTW(source, out, axes=(1,), flags=("FFTW_MEASURE", "FFTW_DESTROY_INPUT"))
            for _camera in range(2):
                plans[rows]()

    seconds = []
    for run in (packed, real):
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(run, range(2 * workers)))
            start = time.perf_counter()
            list(pool.map(run, range(blines)))
            seconds.append(time.perf_counter() - start)
    return seconds[0], seconds[1]


def stage_times(raw: np.ndarray, rec: SpectralReconstructor) -> dict[str, float]:
    """One thread, the block pipeline split into its stages (blocks of 2 B-lines, as the tile runs)."""
    times = {"prepare": 0.0, "fft": 0.0, "post": 0.0, "surface": 0.0, "en-face": 0.0}
    shape = (2, rec.alines, rec.depth)
    vols = Volumes(*(np.zeros(shape, np.float32) for _ in range(3)))
    for b0 in range(0, raw.shape[0] - 1, 2):
        t0 = time.perf_counter()
        prepared, shift, _ = rec._prepare(raw[b0:b0 + 2], True, 65535)
        times["prepare"] += time.perf_counter() - t0
        chunks = rec._chunks(prepared, shift)
        while True:
            t1 = time.perf_counter()
            chunk = next(chunks, None)
            t2 = time.perf_counter()
            times["fft"] += t2 - t1
            if chunk is None:
                break
            rec.chunk_volumes(chunk, vols)
            times["post"] += time.perf_counter() - t2
        t3 = time.perf_counter()
        surface = smooth_surface(gradient_surface(vols.dbi), rec.depth)
        t4 = time.perf_counter()
        enface_maps(vols.dbi, vols.r3d, vols.o3d, surface, EnfaceParams())
        times["surface"] += t4 - t3
        times["en-face"] += time.perf_counter() - t4
    return times


def write_times(result: TileResult, folder: Path, blines: int, alines: int) -> dict[str, float]:
    """Seconds to write the tile's six en-face maps and three volumes, per volume type."""
    seconds = {}
    for dtype in ("float32", "uint16", "uint8"):
        config = PSOCTScanConfig(
            project_name="bench", project_base_path=folder,
            acquisition=PSOCTAcquisitionParams(grid_size_x_normal=1, grid_size_x_tilted=1, grid_size_y=1,
                                               tile_size_x_normal=alines, tile_size_y=blines),
            processing=PSOCTProcessingParams(volume_dtype=dtype),
        )
        start = time.perf_counter()
        write_tile_outputs(result, config, 1, 1)
        seconds[dtype] = time.perf_counter() - start
        shutil.rmtree(folder / "slice-01")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alines", type=int, default=350)
    parser.add_argument("--blines", type=int, default=350)
    parser.add_argument("--length", type=int, default=2048)
    parser.add_argument("--write-dir", type=Path, default=None, help="scratch folder for the output-write timing")
    args = parser.parse_args()
    print(machine_line())
    raw = synthetic_tile(args.blines, args.alines, args.length)
    raw[:, 1] = raw[:, 1, :, ::-1].copy()
    lines = args.blines * args.alines
    raw_gib = raw.nbytes / 2**30
    print(f"tile: {args.blines} B-lines × {args.alines} A-lines × 2 cameras × {args.length} samples, "
          f"uint16, {raw_gib:.2f} GiB, {lines} PS A-lines")
    mu = np.stack([np.linspace(100, args.length - 148, 9), np.linspace(103, args.length - 145, 9)], 1)
    calibration = Calibration(mu, np.linspace(1240, 1360, 9), args.length)
    rec = SpectralReconstructor(calibration, args.length, args.alines)
    sampled = SpectralReconstructor(calibration, args.length, args.alines, SpectralParams(dc_median_lines=64))
    enface = EnfaceParams()
    buffers = volume_buffers(rec, args.blines)
    for warm in (rec, sampled):
        reconstruct_spectral_tile(raw[:4], warm, enface, workers=2, stored_order=True)

    stage_lines = min(64, args.blines)
    stages = stage_times(raw[:stage_lines], rec)
    print("stage rates, 1 thread, exact DC median (PS A-lines/s; µs per PS A-line):")
    stage_count = stage_lines * args.alines
    for name, seconds in stages.items():
        print(f"  {name:8s} {stage_count / seconds:12,.0f}  {1e6 * seconds / stage_count:6.2f} µs")

    rows = []
    result = None
    for workers in (1, 2):
        fft_s, real_s = fft_only(raw, rec, workers)
        result = reconstruct_spectral_tile(raw, rec, enface, workers=workers, buffers=buffers, stored_order=True)
        t = result.times
        overall = lines / t.wall
        fft_rate = lines / fft_s
        rows.append((workers, overall, fft_rate))
        print(f"{workers} core(s): overall {overall:,.0f} PS A-lines/s (wall {t.wall:.2f} s: volumes "
              f"{t.volumes / workers:.2f} s, surface {t.surface / workers:.2f} s, en-face {t.enface / workers:.2f} s "
              f"per worker); FFTs alone {fft_rate:,.0f}/s (as two real FFTs: {lines / real_s:,.0f}/s); "
              f"overall / FFT-only = {overall / fft_rate:.2f}")
    fast = reconstruct_spectral_tile(raw, sampled, enface, workers=2, buffers=buffers, stored_order=True)
    print(f"2 core(s), sampled DC median (64 A-lines): overall {lines / fast.times.wall:,.0f} PS A-lines/s")
    print(f"2-core / 1-core speed-up: {rows[1][1] / rows[0][1]:.2f} (FFTs alone: {rows[1][2] / rows[0][2]:.2f})")
    print(f"goal 150,000 PS A-lines/s on 2 cores: measured {rows[1][1]:,.0f} ({rows[1][1] / 150_000:.2f}× goal)")
    peak = peak_rss_gib()
    print(f"peak RSS {peak:.2f} GiB = {peak / raw_gib:.2f}× the raw tile (bound: 3×)")
    if args.write_dir is not None:
        result = reconstruct_spectral_tile(raw, rec, enface, workers=2, buffers=buffers, stored_order=True)
        args.write_dir.mkdir(parents=True, exist_ok=False)
        try:
            for dtype, seconds in write_times(result, args.write_dir, args.blines, args.alines).items():
                print(f"write outputs ({dtype} volumes, fsync): {seconds:.2f} s = {lines / seconds:,.0f} PS A-lines/s")
        finally:
            shutil.rmtree(args.write_dir)
    print(f"load average at the end: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
