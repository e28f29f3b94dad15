"""Register a grid of large tiles on one core and check the placement against the truth.

Run: ``.venv/bin/python benchmarks/bench_registration.py [--grid 20 --tile 2048 --overlap 0.1]``.

The script re-runs itself with every thread pool limited to one thread (the issue's goal is
for one core). Tiles are lazy: each synthesises only the regions :func:`place_tiles` reads
(its overlap strips), exactly at the tile's true sub-pixel position, by Fourier-shifting a crop
(with a 48-pixel margin, which leaves ~0.3 % RMS ringing) of a periodic band-limited texture.
Memory therefore stays bounded, and the synthesis time is metered and subtracted. Rates are
given per wall second and per CPU second: on a shared machine the CPU figure is the one-core
cost, the wall figure what this run got.

Reported, in one run:

* **pairwise**: pairs/s of :class:`PhaseCorrelator` on strips cut from the grid, beside a plain
  numpy phase correlation of the same strips (the reference measured at 107 pairs/s per core in
  ``shared/reference/performance.md``), so the figures can be compared across machines;
* **place_tiles**: wall and CPU seconds for the whole grid (strip cutting, all pairs, global
  solve), synthesis excluded; the goal is < 10 s for 20 × 20 tiles of 2048² at 10 %;
* **global solve** alone, and on a 50 × 50 grid with 5 % outlier links;
* **RMS error** of the positions against the truth (goal ≤ 0.2 px).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import scipy.fft

from _machine import machine_line, peak_rss_gib
from opticstream_napari.layout import Grid
from opticstream_napari.processing.stitch.global_solve import Link, LinkState, solve_positions
from opticstream_napari.processing.stitch.pairwise import correlator_for
from opticstream_napari.processing.stitch.placement import place_tiles

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMBA_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")
_MARGIN = 48


class Texture:
    """A periodic band-limited sample: fine smoothed noise plus larger bright structures."""

    def __init__(self, size: int = 4096, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        fy = scipy.fft.fftfreq(size)[:, None].astype(np.float32)
        fx = scipy.fft.rfftfreq(size)[None, :].astype(np.float32)
        radius2 = fy**2 + fx**2

        def smoothed(sigma: float) -> np.ndarray:
            spectrum = scipy.fft.rfft2(rng.standard_normal((size, size), dtype=np.float32))
            return scipy.fft.irfft2(spectrum * np.exp(-2 * (np.pi * sigma) ** 2 * radius2),
                                    s=(size, size))

        fine, coarse = smoothed(1.5), smoothed(12.0)
        canvas = fine / fine.std() + 3.0 * (coarse > np.quantile(coarse, 0.7))
        canvas = scipy.fft.irfft2(scipy.fft.rfft2(canvas) * np.exp(-2 * np.pi**2 * radius2),
                                  s=(size, size))
        self.canvas = (canvas / canvas.std()).astype(np.float32)
        self.size = size

    def sample(self, y: float, x: float, shape: tuple[int, int]) -> np.ndarray:
        """The texture on ``shape`` pixels from the real-valued origin ``(y, x)``."""
        iy, ix = int(np.floor(y)), int(np.floor(x))
        h, w = (scipy.fft.next_fast_len(n + 2 * _MARGIN, real=True) for n in shape)
        top, left = (h - shape[0]) // 2, (w - shape[1]) // 2
        rows = np.arange(iy - top, iy - top + h) % self.size
        cols = np.arange(ix - left, ix - left + w) % self.size
        crop = self.canvas[np.ix_(rows, cols)]
        ramp = np.exp(2j * np.pi * (scipy.fft.fftfreq(h)[:, None] * (y - iy)
                                    + scipy.fft.rfftfreq(w)[None, :] * (x - ix)))
        shifted = scipy.fft.irfft2(scipy.fft.rfft2(crop) * ramp.astype(np.complex64), s=(h, w))
        return shifted[top:top + shape[0], left:left + shape[1]].astype(np.float32)


class LazyTile:
    """A tile that synthesises (with pixel noise) only the regions that are read."""

    ndim = 2
    synthesis_s = 0.0
    synthesis_cpu_s = 0.0

    def __init__(self, texture: Texture, origin: tuple[float, float], size: int, seed: int):
        self.texture = texture
        self.origin = origin
        self.shape = (size, size)
        self.seed = seed

    def __getitem__(self, region: tuple[slice, slice]) -> np.ndarray:
        start, cpu = time.perf_counter(), time.process_time()
        (y0, y1, _), (x0, x1, _) = (r.indices(n) for r, n in zip(region, self.shape, strict=True))
        data = self.texture.sample(self.origin[0] + y0, self.origin[1] + x0, (y1 - y0, x1 - x0))
        rng = np.random.default_rng((self.seed, y0, x0))
        data += 0.05 * rng.standard_normal(data.shape, dtype=np.float32)
        LazyTile.synthesis_s += time.perf_counter() - start
        LazyTile.synthesis_cpu_s += time.process_time() - cpu
        return data


def make_grid(texture: Texture, n: int, size: int, overlap: float, jitter: float):
    rng = np.random.default_rng(1)
    grid = Grid(n, n)
    step = size - round(overlap * size)
    tiles, truth = {}, {}
    for tile in range(1, grid.tile_count + 1):
        row, col = grid.position(tile)
        origin = (row * step + rng.uniform(-jitter, jitter), col * step + rng.uniform(-jitter, jitter))
        tiles[tile] = LazyTile(texture, origin, size, tile)
        truth[tile] = origin
    return grid, tiles, truth


def rms_error(positions: dict[int, tuple[float, float]], truth: dict[int, tuple[float, float]]):
    keys = sorted(truth)
    error = np.asarray([positions[k] for k in keys]) - np.asarray([truth[k] for k in keys])
    error -= error.mean(axis=0)
    return float(np.sqrt((error**2).sum(axis=1).mean()))


def reference_pc(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """Plain numpy phase correlation, the kernel performance.md measured at 107 pairs/s."""
    cross = np.fft.rfft2(a) * np.fft.rfft2(b).conj()
    cross /= np.abs(cross) + 1e-20
    surface = np.fft.irfft2(cross, s=a.shape)
    return np.unravel_index(int(np.argmax(surface)), surface.shape)


def bench_pairwise(texture: Texture, size: int, overlap: int, count: int) -> None:
    rng = np.random.default_rng(2)
    pairs = []
    for k in range(count):
        shape = (size, overlap) if k % 2 else (overlap, size)
        y, x = rng.uniform(0, texture.size, 2)
        dy, dx = rng.uniform(-3, 3, 2)
        pairs.append((texture.sample(y, x, shape), texture.sample(y + dy, x + dx, shape), dy, dx))
    for a, _, _, _ in pairs[:2]:
        correlator_for(a.shape).register(a, a)
    start, cpu = time.perf_counter(), time.process_time()
    errors = []
    for a, b, dy, dx in pairs:
        shift = correlator_for(a.shape).register(a, b)
        errors.append((shift.dy - dy, shift.dx - dx))
    ours = count / (time.perf_counter() - start), count / (time.process_time() - cpu)
    start, cpu = time.perf_counter(), time.process_time()
    for a, b, _, _ in pairs:
        reference_pc(a, b)
    reference = count / (time.perf_counter() - start), count / (time.process_time() - cpu)
    errors = np.abs(errors)
    print(f"pairwise ({size}×{overlap} and {overlap}×{size} strips, {count} pairs): "
          f"{ours[0]:.0f} pairs/s wall, {ours[1]:.0f} per CPU-second; numpy phase-correlation "
          f"reference {reference[0]:.0f} wall, {reference[1]:.0f} per CPU-second (ratio "
          f"{ours[1] / reference[1]:.2f}; the reference measured 107/s on an idle core); "
          f"error max {errors.max():.3f} px, RMS {np.sqrt((errors**2).mean()):.3f} px")


def bench_placement(texture: Texture, n: int, size: int, overlap: float) -> None:
    grid, tiles, truth = make_grid(texture, n, size, overlap, jitter=2.0)
    LazyTile.synthesis_s = LazyTile.synthesis_cpu_s = 0.0
    start, cpu = time.perf_counter(), time.process_time()
    placement = place_tiles(tiles, grid, overlap, measure_signal=False)
    wall = time.perf_counter() - start - LazyTile.synthesis_s
    cpu = time.process_time() - cpu - LazyTile.synthesis_cpu_s
    links = [r.link for r in placement.links]
    start = time.perf_counter()
    solve_positions(placement.nominal, links, [(r.link.a, r.link.b) for r in placement.links])
    solve = time.perf_counter() - start
    pairs = len(links)
    print(f"place_tiles {n}×{n} tiles of {size}² at {overlap:.0%} ({pairs} pairs): "
          f"{wall:.2f} s wall, {cpu:.2f} s CPU (synthesis of the strips, "
          f"{LazyTile.synthesis_s:.1f} s, excluded) = {pairs / (wall - solve):.0f} pairs/s wall, "
          f"{pairs / (cpu - solve):.0f} per CPU-second; "
          f"global solve {solve:.3f} s")
    states = {s: sum(r.state is s for r in placement.links) for s in LinkState}
    print(f"placement RMS error vs truth {rms_error(placement.positions, truth):.4f} px; links "
          + ", ".join(f"{s.value} {c}" for s, c in states.items()))


def bench_global_outliers(n: int = 50) -> None:
    rng = np.random.default_rng(3)
    keys = [(r, c) for r in range(n) for c in range(n)]
    nominal = {k: (k[0] * 1843.0, k[1] * 1843.0) for k in keys}
    truth = {k: (y + rng.uniform(-2, 2), x + rng.uniform(-2, 2)) for k, (y, x) in nominal.items()}
    pairs = [(k, (k[0] + dr, k[1] + dc)) for k in keys for dr, dc in ((0, 1), (1, 0))
             if (k[0] + dr, k[1] + dc) in nominal]
    bad = set(rng.choice(len(pairs), round(0.05 * len(pairs)), replace=False).tolist())
    links = []
    for i, (a, b) in enumerate(pairs):
        error = rng.normal(0, 0.05, 2)
        if i in bad:
            angle = rng.uniform(0, 2 * np.pi)
            error = rng.uniform(3, 20) * np.array([np.cos(angle), np.sin(angle)])
        links.append(Link(a, b, tuple(np.subtract(truth[b], truth[a]) + error), 0.9))
    start = time.perf_counter()
    solution = solve_positions(nominal, links, pairs)
    elapsed = time.perf_counter() - start
    rejected = {i for i, r in enumerate(solution.links) if r.state is LinkState.OUTLIER}
    print(f"global solve {n}×{n} with 5 % outlier links (σ 0.05 px on the rest): {elapsed:.2f} s, "
          f"RMS {rms_error(solution.positions, truth):.3f} px, outliers rejected "
          f"{len(bad & rejected)}/{len(bad)}, good links rejected {len(rejected - bad)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=int, default=20, help="tiles per side")
    parser.add_argument("--tile", type=int, default=2048, help="tile edge in pixels")
    parser.add_argument("--overlap", type=float, default=0.1)
    parser.add_argument("--pairs", type=int, default=100, help="pairs in the pairwise figure")
    args = parser.parse_args(argv)
    print(machine_line())
    start = time.perf_counter()
    texture = Texture()
    print(f"texture 4096² made in {time.perf_counter() - start:.1f} s; one thread per pool")
    bench_pairwise(texture, args.tile, round(args.overlap * args.tile), args.pairs)
    bench_placement(texture, args.grid, args.tile, args.overlap)
    bench_global_outliers()
    print(f"peak RSS {peak_rss_gib():.2f} GiB; load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    if any(os.environ.get(var) != "1" for var in _THREAD_VARS):
        os.execve(sys.executable, [sys.executable, *sys.argv],
                  {**os.environ, **dict.fromkeys(_THREAD_VARS, "1")})
    main()
