"""Worker processes of the concurrency tests (spawned, so they live in an importable module)."""

from __future__ import annotations

import time
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier, Event

from opticstream_napari.identity import PSOCTTileId
from opticstream_napari.state.claims import claim, complete, keep_alive
from opticstream_napari.state.hierarchy import ProjectKey
from opticstream_napari.state.service import StateService

PROJECT = ProjectKey("psoct", "race")
WORK_SECONDS = 0.02  # per tile in claim_and_complete


def claim_and_complete(
    url: str, worker: str, start: Barrier, results: Queue  # type: ignore[type-arg]
) -> None:
    """Take tiles until none are left; each completion also bumps its batch's attempts.

    Each tile takes ``WORK_SECONDS``, as real work does: without it one worker can take every
    tile before the others' first claim gets the database (seen on a busy 2-core machine).
    """
    state = StateService.connect(url)
    start.wait(60)
    completed = []
    with keep_alive(state, PROJECT, worker, interval=0.5):
        while held := claim(state, PROJECT, worker, limit=2, heartbeat_timeout=30):
            for unit in held:
                time.sleep(WORK_SECONDS)
                with state.update(unit.ident.parent) as batch:  # type: ignore[union-attr]
                    batch.mark_started()
                complete(state, unit)
                completed.append(unit.ident.tile)  # type: ignore[union-attr]
    state.close()
    results.put((worker, completed))


def claim_then_hang(url: str, worker: str, claimed: Event) -> None:
    """Claim one tile and stop heartbeating (the parent kills this process)."""
    state = StateService.connect(url)
    claim(state, PROJECT, worker)
    claimed.set()
    time.sleep(600)


def hang_inside_update(url: str, tile: PSOCTTileId, inside: Event) -> None:
    """Hold a tile's row lock in an open transaction (the parent kills this process)."""
    state = StateService.connect(url)
    with state.update(tile) as node:
        node.mark_started()
        inside.set()
        time.sleep(600)
