"""PS-OCT tile reconstruction throughput: PS A-lines/s per stage and overall, 1 and 2 cores.

Reports, in one run: the FFTs alone (the ceiling), each stage on one thread, the whole tile
(spectral uint16 in -> volumes, surface, en-face out) on 1 and 2 worker threads, and the peak
memory against the raw tile size. Usage::

    .venv/bin/python benchmarks/bench_psoct_tile.py [--alines 350] [--blines 350] [--length 2048]
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from _machine import machine_line, peak_rss_gib
from opticstream_napari.processing.psoct import (
    Calibration,
    EnfaceParams,
    SpectralReconstructor,
    kernels,
    reconstruct_spectral_tile,
    volume_buffers,
)
from opticstream_napari.processing.psoct.fft import aligned_empty, k_transform
from opticstream_napari.processing.psoct.spectral import CHUNK_ALINES


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


def fft_only(raw: np.ndarray, rec: SpectralReconstructor, workers: int) -> float:
    """Seconds for the 2 FFTs per PS A-line of the tile, in the pipeline's chunking."""
    blines = raw.shape[0]

    def run(b: int) -> None:
        source = aligned_empty((2, rec.alines, rec.length), np.float32)
        source[:] = raw[b]
        out = aligned_empty((CHUNK_ALINES, rec.bins), np.complex64)
        for a0 in range(0, rec.alines, CHUNK_ALINES):
            rows = min(CHUNK_ALINES, rec.alines - a0)
            plan = k_transform(rows, rec.length, complex_input=False)
            for camera in range(2):
                plan(source[camera, a0:a0 + rows], out[:rows])

    run(0)
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(run, range(blines)))
    return time.perf_counter() - start


def stage_times(raw: np.ndarray, rec: SpectralReconstructor) -> dict[str, float]:
    """One thread, the block pipeline split into prepare, FFT and post stages."""
    times = {"prepare": 0.0, "fft": 0.0, "post": 0.0}
    shape = (1, rec.alines, rec.depth)
    dbi, r3d, o3d = (np.zeros(shape, np.float32) for _ in range(3))
    power = np.empty(rec.depth, np.float32)
    bits = np.empty(rec.depth, np.int32)
    spectra = aligned_empty((2, CHUNK_ALINES, rec.bins), np.complex64)
    for b in range(raw.shape[0]):
        t0 = time.perf_counter()
        prepared = rec._prepare(raw[b:b + 1])
        t1 = time.perf_counter()
        times["prepare"] += t1 - t0
        for a0 in range(0, rec.alines, CHUNK_ALINES):
            a1 = min(a0 + CHUNK_ALINES, rec.alines)
            t1 = time.perf_counter()
            plan = k_transform(a1 - a0, rec.length, complex_input=False)
            plan(prepared[0, 0, a0:a1], spectra[0, : a1 - a0])
            plan(prepared[0, 1, a0:a1], spectra[1, : a1 - a0])
            t2 = time.perf_counter()
            kernels.spectra_to_volumes(
                spectra[0, : a1 - a0], spectra[1, : a1 - a0], rec.params.autocorr_cut, rec.two_offset,
                False, dbi[0, a0:a1], r3d[0, a0:a1], o3d[0, a0:a1], power, bits,
            )
            times["fft"] += t2 - t1
            times["post"] += time.perf_counter() - t2
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alines", type=int, default=350)
    parser.add_argument("--blines", type=int, default=350)
    parser.add_argument("--length", type=int, default=2048)
    args = parser.parse_args()
    print(machine_line())
    raw = synthetic_tile(args.blines, args.alines, args.length)
    lines = args.blines * args.alines
    raw_gib = raw.nbytes / 2**30
    print(f"tile: {args.blines} B-lines × {args.alines} A-lines × 2 cameras × {args.length} samples, "
          f"uint16, {raw_gib:.2f} GiB, {lines} PS A-lines")
    mu = np.stack([np.linspace(100, args.length - 148, 9), np.linspace(103, args.length - 145, 9)], 1)
    rec = SpectralReconstructor(Calibration(mu, np.linspace(1240, 1360, 9), args.length), args.length, args.alines)
    enface = EnfaceParams()
    buffers = volume_buffers(rec, args.blines)
    reconstruct_spectral_tile(raw[:4], rec, enface, workers=2)

    stages = stage_times(raw[: min(64, args.blines)], rec)
    stage_lines = min(64, args.blines) * args.alines
    print("stage rates, 1 thread (PS A-lines/s):")
    for name, seconds in stages.items():
        print(f"  {name:8s} {stage_lines / seconds:12,.0f}")

    rows = []
    for workers in (1, 2):
        fft_s = fft_only(raw, rec, workers)
        result = reconstruct_spectral_tile(raw, rec, enface, workers=workers, buffers=buffers)
        t = result.times
        overall = lines / t.wall
        fft_rate = lines / fft_s
        rows.append((workers, overall, fft_rate))
        print(f"{workers} core(s): overall {overall:,.0f} PS A-lines/s (wall {t.wall:.2f} s: volumes "
              f"{t.volumes / workers:.2f} s, surface {t.surface:.2f} s, en-face {t.enface:.2f} s); "
              f"FFTs alone {fft_rate:,.0f}/s; overall / FFT-only = {overall / fft_rate:.2f}")
    print(f"2-core / 1-core speed-up: {rows[1][1] / rows[0][1]:.2f}")
    print(f"goal 150,000 PS A-lines/s on 2 cores: measured {rows[1][1]:,.0f} ({rows[1][1] / 150_000:.2f}× goal)")
    peak = peak_rss_gib()
    print(f"peak RSS {peak:.2f} GiB = {peak / raw_gib:.2f}× the raw tile (bound: 3×)")


if __name__ == "__main__":
    main()
