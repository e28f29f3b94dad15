"""The service's three reads, node creation, subtrees, removal and the event history."""

from __future__ import annotations

import threading
import time

import pytest

from opticstream_napari.identity import (
    LSMChannelId,
    LSMStripId,
    PSOCTBatchId,
    PSOCTMosaicId,
    PSOCTSliceId,
    PSOCTTileId,
)
from opticstream_napari.state.errors import NodeNotFound
from opticstream_napari.state.hierarchy import ProjectKey
from opticstream_napari.state.lifecycle import Lifecycle
from opticstream_napari.state.service import StateService

P = ProjectKey("psoct", "p")


def test_update_creates_the_node_and_its_ancestors(state: StateService) -> None:
    tile = PSOCTTileId("p", 2, 3, 4, 10)
    with state.update(tile) as node:
        assert node.state is Lifecycle.PENDING
        node.mark_started()
    for ident in (tile.parent, tile.parent.parent, PSOCTSliceId("p", 2)):
        view = state.peek(ident)
        assert view is not None and view.state is Lifecycle.PENDING
    created = [e for e in state.events() if e.payload.get("created")]
    assert [e.ident for e in created] == [PSOCTSliceId("p", 2), tile.parent.parent, tile.parent,
                                          tile]
    assert state.projects() == [P]


def test_update_without_create_needs_the_node(state: StateService) -> None:
    with pytest.raises(NodeNotFound, match="no such tile"), \
            state.update(PSOCTTileId("p", 1, 1, 1, 1), create=False):
        pass
    assert state.projects() == []


def test_missing_nodes_read_as_none(state: StateService) -> None:
    assert state.peek(PSOCTBatchId("p", 1, 1, 1)) is None
    assert state.read(LSMStripId("q", 1, 1, 1)) is None
    assert state.children(P) == []


def test_register_is_idempotent_and_counts_new_nodes(state: StateService) -> None:
    tiles = [PSOCTTileId("p", 1, 1, b, t) for b in (1, 2) for t in range(1, 4)]
    assert state.register(tiles) == 1 + 1 + 2 + 6
    assert state.register(tiles) == 0
    assert state.register([*tiles, PSOCTTileId("p", 1, 2, 1, 1)]) == 3
    assert [v.ident.batch for v in state.children(PSOCTMosaicId("p", 1, 1))] == [1, 2]


def test_read_waits_for_a_writer_peek_does_not(state: StateService) -> None:
    batch = PSOCTBatchId("p", 1, 1, 1)
    state.register([batch])
    inside, release = threading.Event(), threading.Event()

    def writer() -> None:
        with state.update(batch) as node:
            node.mark_started()
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=writer)
    thread.start()
    assert inside.wait(10)
    peeked = state.peek(batch)
    assert peeked is not None and peeked.state is Lifecycle.PENDING
    threading.Timer(0.3, release.set).start()
    started = time.monotonic()
    read = state.read(batch)
    waited = time.monotonic() - started
    thread.join()
    assert read is not None and read.state is Lifecycle.RUNNING
    assert waited >= 0.2


def test_children_and_tree(state: StateService) -> None:
    state.register([PSOCTTileId("p", s, m, 1, t) for s in (1, 2) for m in (1, 2) for t in (1, 2)])
    assert [v.ident for v in state.children(P)] == [PSOCTSliceId("p", 1), PSOCTSliceId("p", 2)]
    assert state.children(PSOCTTileId("p", 1, 1, 1, 1)) == []
    tree = state.tree(P, depth=2)
    assert tree["project"] == "p" and len(tree["slices"]) == 2
    assert [m["ident"]["mosaic"] for m in tree["slices"][1]["mosaics"]] == [1, 2]
    assert "batches" not in tree["slices"][0]["mosaics"][0]
    deep = state.tree(PSOCTMosaicId("p", 2, 2), depth=5)
    assert [t["ident"]["tile"] for t in deep["batches"][0]["tiles"]] == [1, 2]
    assert state.tree(PSOCTSliceId("p", 1), depth=0)["state"] == "pending"
    with pytest.raises(NodeNotFound):
        state.tree(PSOCTSliceId("p", 9))
    with pytest.raises(NodeNotFound, match="no psoct project 'x'"):
        state.tree(ProjectKey("psoct", "x"))


def test_remove_a_subtree_and_a_project(state: StateService) -> None:
    state.register([PSOCTTileId("p", 1, m, 1, 1) for m in (1, 2)])
    state.register([LSMStripId("p", 1, 1, 1)])
    state.remove(PSOCTMosaicId("p", 1, 1))
    assert state.peek(PSOCTTileId("p", 1, 1, 1, 1)) is None
    assert state.peek(PSOCTTileId("p", 1, 2, 1, 1)) is not None
    assert state.events()[-1].name == "linc.opticstream.psoct.mosaic.removed"
    with pytest.raises(NodeNotFound):
        state.remove(PSOCTMosaicId("p", 1, 1))
    state.remove(P)
    assert state.peek(PSOCTSliceId("p", 1)) is None
    assert state.events()[-1].name == "linc.opticstream.psoct.slice.removed"
    assert state.projects() == [ProjectKey("lsm", "p")]
    with pytest.raises(NodeNotFound):
        state.remove(P)


def test_update_matching_locks_every_matching_node(state: StateService) -> None:
    state.register([LSMStripId("q", s, c, i) for s in (1, 2) for c in (1, 2) for i in (1, 2)])
    with state.update_matching(ProjectKey("lsm", "q"), "strip", slice=1, strip=2) as nodes:
        assert [n.ident for n in nodes] == [LSMStripId("q", 1, 1, 2), LSMStripId("q", 1, 2, 2)]
        for node in nodes:
            node.set_flag("compressed")
    view = state.peek(LSMStripId("q", 1, 2, 2))
    assert view is not None and view.flags["compressed"]
    with pytest.raises(ValueError, match="no key mosaic"), \
            state.update_matching(ProjectKey("lsm", "q"), "strip", mosaic=1):
        pass


def test_announce_logs_a_signal_with_extras(state: StateService) -> None:
    channel = LSMChannelId("q", 1, 1)
    event = state.announce(channel, "ready", {"strips": 2})
    assert event.name == "linc.opticstream.lsm.channel.ready"
    logged = state.events(ProjectKey("lsm", "q"))[-1]
    assert (logged.name, logged.payload["strips"], logged.ident) == (event.name, 2, channel)


def test_events_filter_by_project_and_page(state: StateService) -> None:
    state.register([PSOCTTileId("p", 1, 1, 1, 1), LSMStripId("p", 1, 1, 1)])
    psoct = state.events(P)
    assert psoct and all(e.modality == "psoct" for e in psoct)
    first, *rest = state.events()
    assert state.events(after_id=first.id) == rest
    assert len(state.events(limit=2)) == 2


def test_views_serialise_to_json_ready_dicts(state: StateService) -> None:
    tile = PSOCTTileId("p", 1, 1, 1, 1)
    with state.update(tile) as node:
        node.take_claim("w1")
    data = state.peek(tile).to_dict()  # type: ignore[union-attr]
    assert data["ident"] == tile.to_dict() and data["claimed_by"] == "w1"
    assert data["state"] == "running" and data["started_at"].endswith("+00:00")
