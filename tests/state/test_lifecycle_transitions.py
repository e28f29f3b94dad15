"""Every lifecycle transition from every state, with its times, attempts, error and event."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from opticstream_napari.identity import Identity, LSMStripId, PSOCTMosaicId, PSOCTTileId
from opticstream_napari.state.lifecycle import Lifecycle
from opticstream_napari.state.node import NodeHandle
from opticstream_napari.state.service import StateService

IDENTS: list[Identity] = [PSOCTTileId("p", 1, 1, 1, 1), PSOCTMosaicId("p", 1, 2),
                          LSMStripId("q", 1, 1, 1)]

TRANSITIONS: dict[str, tuple[Callable[[NodeHandle], None], Lifecycle]] = {
    "started": (lambda n: n.mark_started(), Lifecycle.RUNNING),
    "completed": (lambda n: n.mark_completed(), Lifecycle.COMPLETED),
    "failed": (lambda n: n.mark_failed("disk full"), Lifecycle.FAILED),
    "skipped": (lambda n: n.mark_skipped("tile outside tissue"), Lifecycle.SKIPPED),
    "pending": (lambda n: n.mark_pending(), Lifecycle.PENDING),
}


def _put(state: StateService, ident: Identity, start: Lifecycle) -> None:
    """Bring a node into ``start`` the way the pipeline would (one attempt, then the outcome)."""
    with state.update(ident) as node:
        node.mark_pending()
        if start is not Lifecycle.PENDING:
            node.mark_started()
        if start in (Lifecycle.COMPLETED, Lifecycle.FAILED, Lifecycle.SKIPPED):
            node.set_state(start, "earlier failure")


@pytest.mark.parametrize("transition", list(TRANSITIONS))
def test_transition_from_every_state(state: StateService, transition: str) -> None:
    apply, target = TRANSITIONS[transition]
    for ident in IDENTS:
        for start in Lifecycle:
            _put(state, ident, start)
            before = state.peek(ident)
            assert before is not None and before.state is start
            with state.update(ident) as node:
                apply(node)
            after = state.peek(ident)
            assert after is not None
            assert after.state is target
            assert after.updated_at >= before.updated_at
            if target is Lifecycle.RUNNING:
                assert after.attempts == before.attempts + 1
                assert after.started_at is not None and after.finished_at is None
                assert after.last_error is None
            else:
                assert after.attempts == before.attempts
            if target in (Lifecycle.COMPLETED, Lifecycle.FAILED, Lifecycle.SKIPPED):
                assert after.finished_at is not None and after.finished
                assert after.started_at == before.started_at
            if target is Lifecycle.PENDING:
                assert after.started_at is None and after.finished_at is None
            if target is Lifecycle.FAILED:
                assert after.last_error == "disk full" and not after.done
            if target in (Lifecycle.COMPLETED, Lifecycle.SKIPPED):
                assert after.done
            last = state.events()[-1]
            assert last.name == f"linc.opticstream.{ident.modality}.{ident.level}.{target}"
            assert last.ident == ident


def test_failure_and_skip_reasons_reach_the_event(state: StateService) -> None:
    tile = PSOCTTileId("p", 1, 1, 1, 4)
    with state.update(tile) as node:
        node.mark_failed("checksum mismatch")
    with state.update(tile) as node:
        node.mark_skipped("operator: tile outside tissue")
    failed, skipped = state.events()[-2:]
    assert failed.payload["error"] == "checksum mismatch"
    assert skipped.payload["reason"] == "operator: tile outside tissue"
    view = state.peek(tile)
    assert view is not None and view.last_error == "checksum mismatch"


def test_a_retry_counts_attempts_and_clears_the_error(state: StateService) -> None:
    tile = PSOCTTileId("p", 1, 1, 1, 2)
    with state.update(tile) as node:
        node.mark_started()
        node.mark_failed("boom")
    with state.update(tile) as node:
        node.mark_pending()
    view = state.peek(tile)
    assert view is not None and view.attempts == 1 and view.last_error == "boom"
    with state.update(tile) as node:
        node.mark_started()
        node.mark_completed()
    view = state.peek(tile)
    assert view is not None
    assert (view.state, view.attempts, view.last_error) == (Lifecycle.COMPLETED, 2, None)


def test_set_state_without_message_gives_a_default_error(state: StateService) -> None:
    strip = LSMStripId("q", 1, 1, 2)
    with state.update(strip) as node:
        node.set_state(Lifecycle.FAILED)
    view = state.peek(strip)
    assert view is not None and view.last_error == "marked failed"


def test_a_failed_update_changes_nothing(state: StateService) -> None:
    tile = PSOCTTileId("p", 1, 1, 1, 3)
    state.register([tile])
    count = len(state.events())
    with pytest.raises(RuntimeError), state.update(tile) as node:
        node.mark_started()
        raise RuntimeError("crash inside the update")
    view = state.peek(tile)
    assert view is not None and view.state is Lifecycle.PENDING and view.attempts == 0
    assert len(state.events()) == count
