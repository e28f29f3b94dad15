"""Benchmark of the state store: per-slice summary latency and state-update throughput.

Builds a PS-OCT project of SLICES × MOSAICS × TILES tiles (default 100 × 2 × 500, tiles in
batches of GRID_Y) on each backend, then measures:

- build: registering every node (one transaction per slice) in nodes/s;
- updates/s: one transition per transaction (``StateService.update`` → ``mark_started`` or
  ``mark_completed``: row lock, row update, event insert, commit), from one process;
- claims/s: claim + complete of tiles by WORKERS processes at once (the engine's pattern);
- summary latency: ``summarize`` of one slice (median and p95 over SAMPLES random slices), and
  of all slices at once.

SQLite is a file in a temporary folder on disk (WAL, synchronous=NORMAL); PostgreSQL is a
throwaway server with durable settings (fsync on) on disk, or the server of --postgres-url
(which must point at an empty database). Run: ``.venv/bin/python benchmarks/bench_state.py``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

from sqlalchemy import text

from _machine import machine_line
from opticstream_napari.identity import PSOCTTileId
from opticstream_napari.layout import batch_of_tile
from opticstream_napari.state.claims import claim, complete
from opticstream_napari.state.hierarchy import ProjectKey
from opticstream_napari.state.pgserver import temporary_postgres
from opticstream_napari.state.service import StateService
from opticstream_napari.state.summary import summarize

PROJECT = ProjectKey("psoct", "bench")


def tiles_of_slice(slice_: int, mosaics: int, tiles: int, grid_y: int) -> list[PSOCTTileId]:
    first = (slice_ - 1) * mosaics + 1
    return [PSOCTTileId(PROJECT.name, slice_, m, batch_of_tile(t, grid_y), t)
            for m in range(first, first + mosaics) for t in range(1, tiles + 1)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed_ms(samples: int, work: Any) -> dict[str, float]:
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1e3)
    return {"median_ms": statistics.median(times), "p95_ms": percentile(times, 0.95)}


def claim_worker(url: str, worker: str, quota: int, start: Barrier,
                 results: Queue) -> None:  # type: ignore[type-arg]
    state = StateService.connect(url)
    start.wait(120)
    began, done = time.perf_counter(), 0
    while done < quota and (held := claim(state, PROJECT, worker, limit=1)):
        complete(state, held[0])
        done += 1
    results.put((done, began, time.perf_counter()))
    state.close()


def claims_per_second(url: str, workers: int, quota: int) -> float:
    spawn = multiprocessing.get_context("spawn")
    start, results = spawn.Barrier(workers), spawn.Queue()
    processes = [spawn.Process(target=claim_worker, args=(url, f"w{i}", quota, start, results))
                 for i in range(workers)]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=600) for _ in processes]
    for process in processes:
        process.join()
    total = sum(done for done, _, _ in outcomes)
    window = max(end for *_, end in outcomes) - min(began for _, began, _ in outcomes)
    return total / window


def run_backend(url: str, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(7)
    result: dict[str, Any] = {}
    with StateService.connect(url) as state:
        started = time.perf_counter()
        nodes = sum(state.register(tiles_of_slice(s, args.mosaics, args.tiles, args.grid_y))
                    for s in range(1, args.slices + 1))
        build = time.perf_counter() - started
        result["build"] = {"nodes": nodes, "seconds": build, "nodes_per_s": nodes / build}

        sample = rng.sample(tiles_of_slice(1, args.mosaics, args.tiles, args.grid_y)
                            + tiles_of_slice(2, args.mosaics, args.tiles, args.grid_y),
                            args.updates // 2)
        started = time.perf_counter()
        for tile in sample:
            with state.update(tile) as node:
                node.mark_started()
        for tile in sample:
            with state.update(tile) as node:
                node.mark_completed()
        result["updates_per_s"] = 2 * len(sample) / (time.perf_counter() - started)

        slices = list(range(1, args.slices + 1))
        for when in ("fresh", "analyzed"):
            if when == "analyzed":
                analyze(state)
            result[f"slice_summary_{when}"] = timed_ms(
                args.samples, lambda: summarize(state, PROJECT, [rng.choice(slices)]))
            result[f"project_summary_{when}"] = timed_ms(
                max(5, args.samples // 20), lambda: summarize(state, PROJECT))
    result["claims_per_s"] = claims_per_second(url, args.workers, args.claims // args.workers)
    return result


def analyze(state: StateService) -> None:
    """What PostgreSQL's autovacuum does soon after a bulk insert (statistics, visibility map)."""
    with state.database.engine.connect() as connection:
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        connection.exec_driver_sql("ANALYZE" if state.database.is_sqlite else "VACUUM ANALYZE")


@contextmanager
def backend_url(name: str, args: argparse.Namespace, folder: Path) -> Iterator[str]:
    if name == "sqlite":
        yield f"sqlite:///{folder / 'bench.db'}"
    elif args.postgres_url:
        yield args.postgres_url
    else:
        with temporary_postgres(fast=False) as server:
            yield server.url()


def report(name: str, f: dict[str, Any], workers: int) -> None:
    server = f" {f['server']}" if "server" in f else ""
    print(f"{name}{server}: build {f['build']['nodes']} nodes in {f['build']['seconds']:.1f} s "
          f"({f['build']['nodes_per_s']:.0f}/s); updates {f['updates_per_s']:.0f}/s; "
          f"claim+complete {f['claims_per_s']:.0f}/s ({workers} processes)")
    for when in ("fresh", "analyzed"):
        one, every = f[f"slice_summary_{when}"], f[f"project_summary_{when}"]
        print(f"  summary ({when}): one slice median {one['median_ms']:.2f} ms, "
              f"p95 {one['p95_ms']:.2f} ms; all slices median {every['median_ms']:.1f} ms, "
              f"p95 {every['p95_ms']:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slices", type=int, default=100)
    parser.add_argument("--mosaics", type=int, default=2)
    parser.add_argument("--tiles", type=int, default=500, help="tiles per mosaic")
    parser.add_argument("--grid-y", type=int, default=20, help="tiles per batch")
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--claims", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgres"],
                        choices=["sqlite", "postgres"])
    parser.add_argument("--postgres-url", help="an empty database on your own server")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    machine = f"{machine_line()}; SQLite {sqlite3.sqlite_version}"
    print(machine)
    print(f"project: {args.slices} slices x {args.mosaics} mosaics x {args.tiles} tiles "
          f"(batches of {args.grid_y})")
    figures: dict[str, Any] = {"machine": machine, "args": vars(args) | {"json": None}}
    with tempfile.TemporaryDirectory(prefix="bench-state-") as folder:
        for name in args.backends:
            with backend_url(name, args, Path(folder)) as url:
                figures[name] = run_backend(url, args)
                if name == "postgres":
                    with StateService.connect(url) as state, state.database.peeking() as session:
                        figures[name]["server"] = session.scalar(text("SHOW server_version"))
            report(name, figures[name], args.workers)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    main()
