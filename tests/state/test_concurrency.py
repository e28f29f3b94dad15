"""Several OS processes on one database: exclusive claims, no lost update, dead-worker recovery."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import state_workers
from state_workers import PROJECT

from opticstream_napari.identity import PSOCTBatchId, PSOCTTileId
from opticstream_napari.state.claims import claim, recover_expired
from opticstream_napari.state.lifecycle import Lifecycle
from opticstream_napari.state.service import StateService

WORKERS = 4
BATCHES, TILES_PER_BATCH = 6, 10
SPAWN = multiprocessing.get_context("spawn")


def test_every_tile_completes_exactly_once(state: StateService, database_url: str) -> None:
    tiles = [PSOCTTileId("race", 1, 1, b, t) for b in range(1, BATCHES + 1)
             for t in range(1, TILES_PER_BATCH + 1)]
    state.register(tiles)
    results, start = SPAWN.Queue(), SPAWN.Barrier(WORKERS)
    workers = [SPAWN.Process(target=state_workers.claim_and_complete,
                             args=(database_url, f"worker-{i}", start, results))
               for i in range(WORKERS)]
    for process in workers:
        process.start()
    done = dict(results.get(timeout=120) for _ in workers)
    for process in workers:
        process.join(30)
        assert process.exitcode == 0
    completed = [t for tiles_of_worker in done.values() for t in tiles_of_worker]
    assert len(completed) == len(tiles)
    assert sum(1 for tiles_of_worker in done.values() if tiles_of_worker) > 1
    views = [state.peek(t) for t in tiles]
    assert all(v is not None and v.state is Lifecycle.COMPLETED and v.attempts == 1
               for v in views)
    names = [e.name for e in state.events(PROJECT)]
    assert names.count("linc.opticstream.psoct.tile.completed") == len(tiles)
    assert names.count("linc.opticstream.psoct.tile.running") == len(tiles)
    batches = [state.peek(PSOCTBatchId("race", 1, 1, b)) for b in range(1, BATCHES + 1)]
    assert sum(b.attempts for b in batches if b) == len(tiles)


def test_a_killed_worker_loses_its_claim_and_its_lock(state: StateService,
                                                      database_url: str) -> None:
    held_tile, locked_tile = PSOCTTileId("race", 1, 1, 1, 1), PSOCTTileId("race", 1, 1, 1, 2)
    state.register([held_tile, locked_tile])
    claimed, inside = SPAWN.Event(), SPAWN.Event()
    claimer = SPAWN.Process(target=state_workers.claim_then_hang,
                            args=(database_url, "doomed", claimed))
    claimer.start()
    assert claimed.wait(60)
    locker = SPAWN.Process(target=state_workers.hang_inside_update,
                           args=(database_url, locked_tile, inside))
    locker.start()
    assert inside.wait(60)
    killed_at = time.monotonic()
    for process in (claimer, locker):
        os.kill(process.pid, signal.SIGKILL)  # type: ignore[arg-type]
        process.join(10)
        assert process.exitcode == -signal.SIGKILL

    with state.update(locked_tile) as node:
        assert node.state is Lifecycle.PENDING and node.attempts == 0
    assert time.monotonic() - killed_at < 10

    view = state.peek(held_tile)
    assert view is not None and view.state is Lifecycle.RUNNING and view.claimed_by == "doomed"
    assert recover_expired(state, PROJECT, timeout=30) == []
    time.sleep(max(0.0, 1.2 - (time.monotonic() - killed_at)))
    (retaken,) = claim(state, PROJECT, "rescuer", heartbeat_timeout=1.0)
    assert (retaken.ident, retaken.attempt) == (held_tile, 2)
