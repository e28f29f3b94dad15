"""The claim protocol in one process: order, limits, heartbeats, expiry and lost claims."""

from __future__ import annotations

import time

import pytest

from opticstream_napari.identity import LSMStripId, PSOCTBatchId, PSOCTTileId
from opticstream_napari.state.claims import (
    Claim,
    claim,
    complete,
    default_worker_id,
    fail,
    heartbeat,
    keep_alive,
    recover_expired,
    release,
)
from opticstream_napari.state.errors import ClaimLost
from opticstream_napari.state.hierarchy import ProjectKey
from opticstream_napari.state.lifecycle import Lifecycle
from opticstream_napari.state.service import StateService

P = ProjectKey("psoct", "p")
TILES = [PSOCTTileId("p", 1, m, 1, t) for m in (1, 2) for t in (1, 2, 3)]


def test_claims_take_pending_units_in_key_order(state: StateService) -> None:
    state.register(TILES)
    first = claim(state, P, "w1", limit=2)
    second = claim(state, P, "w2", limit=10, scope=PSOCTBatchId("p", 1, 1, 1))
    assert [c.ident for c in first] == TILES[:2]
    assert [c.ident for c in second] == TILES[2:3]
    assert all(c.attempt == 1 for c in first + second)
    view = state.peek(TILES[0])
    assert view is not None and view.state is Lifecycle.RUNNING and view.claimed_by == "w1"
    assert view.heartbeat_at is not None
    assert state.events()[-1].payload["worker"] == "w2"
    assert len(claim(state, P, "w3", limit=10)) == 3
    assert claim(state, P, "w3") == []


def test_finishing_a_claim(state: StateService) -> None:
    state.register(TILES[:3])
    a, b, c = claim(state, P, "w1", limit=3)
    complete(state, a, {"outputs": 9})
    fail(state, b, "reconstruction diverged")
    release(state, c, "shutting down")
    views = [state.peek(t) for t in TILES[:3]]
    assert [v.state for v in views if v] == [Lifecycle.COMPLETED, Lifecycle.FAILED,
                                             Lifecycle.PENDING]
    assert all(v is not None and v.claimed_by is None and v.heartbeat_at is None for v in views)
    assert views[1] is not None and views[1].last_error == "reconstruction diverged"
    again = claim(state, P, "w2")
    assert again == [Claim(TILES[2], "w2", 2)]
    with pytest.raises(ClaimLost, match="held by w2"):
        complete(state, c)


def test_expired_claims_return_to_the_queue(state: StateService) -> None:
    state.register(TILES[:2])
    held = claim(state, P, "dead", limit=2)
    assert recover_expired(state, P, timeout=30) == []
    time.sleep(0.6)
    assert heartbeat(state, P, "dead") == 2
    complete(state, held[1])
    assert heartbeat(state, P, "dead") == 1
    time.sleep(0.6)
    assert recover_expired(state, P, timeout=0.5) == [TILES[0]]
    event = state.events()[-1]
    assert (event.name, event.payload["reason"], event.payload["worker"]) == (
        "linc.opticstream.psoct.tile.pending", "claim expired", "dead")
    with pytest.raises(ClaimLost, match="now pending"):
        complete(state, held[0])
    assert claim(state, P, "alive", heartbeat_timeout=0.5) == [Claim(TILES[0], "alive", 2)]


def test_keep_alive_heartbeats_in_the_background(state: StateService) -> None:
    state.register(TILES[:1])
    worker = default_worker_id()
    (held,) = claim(state, P, worker)
    with keep_alive(state, P, worker, interval=0.1):
        time.sleep(0.8)
        assert recover_expired(state, P, timeout=0.5) == []
    complete(state, held)


def test_claims_of_a_removed_unit_are_lost(state: StateService) -> None:
    state.register(TILES[:1])
    (held,) = claim(state, P, "w1")
    state.remove(PSOCTBatchId("p", 1, 1, 1))
    with pytest.raises(Exception, match="no such tile"):
        complete(state, held)


def test_lsm_strips_are_claimed_the_same_way(state: StateService) -> None:
    strips = [LSMStripId("q", 1, c, s) for c in (1, 2) for s in (1, 2)]
    state.register(strips)
    held = claim(state, ProjectKey("lsm", "q"), "w1", limit=4)
    assert [c.ident for c in held] == strips
    for c in held:
        complete(state, c)
    assert claim(state, ProjectKey("lsm", "q"), "w1") == []
