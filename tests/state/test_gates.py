"""Flow and milestone gates of spec 1.5: every decision, and what each leaves behind."""

from __future__ import annotations

import pytest

from opticstream_napari.identity import LSMStripId, PSOCTBatchId, PSOCTMosaicId, PSOCTTileId
from opticstream_napari.state.gates import (
    GateDecision,
    enter_flow,
    enter_milestone,
    guarded_milestone,
)
from opticstream_napari.state.lifecycle import Lifecycle
from opticstream_napari.state.service import StateService

# (starting state or None for "no node", force_rerun, skip_if_running) -> decision
FLOW_CASES = [
    (None, False, False, GateDecision.RUN),
    (Lifecycle.PENDING, False, False, GateDecision.RUN),
    (Lifecycle.FAILED, False, False, GateDecision.RUN),
    (Lifecycle.FAILED, True, False, GateDecision.RUN),
    (Lifecycle.COMPLETED, False, False, GateDecision.SKIP_COMPLETED),
    (Lifecycle.COMPLETED, False, True, GateDecision.SKIP_COMPLETED),
    (Lifecycle.COMPLETED, True, False, GateDecision.RERUN),
    (Lifecycle.RUNNING, False, False, GateDecision.RUN),
    (Lifecycle.RUNNING, False, True, GateDecision.SKIP_RUNNING),
    (Lifecycle.RUNNING, True, True, GateDecision.RERUN),
    (Lifecycle.SKIPPED, False, False, GateDecision.SKIP_SKIPPED),
    (Lifecycle.SKIPPED, True, False, GateDecision.RERUN),
]


def test_flow_gate_decisions(state: StateService) -> None:
    for number, (start, force, skip_running, expected) in enumerate(FLOW_CASES, start=1):
        tile = PSOCTTileId("p", 1, 1, 1, number)
        if start is not None:
            with state.update(tile) as node:
                node.mark_started()
                if start is not Lifecycle.RUNNING:
                    node.set_state(start, "earlier")
        before = state.peek(tile)
        decision = enter_flow(state, tile, force_rerun=force, skip_if_running=skip_running)
        assert decision is expected, (start, force, skip_running)
        after = state.peek(tile)
        assert after is not None
        if decision.should_run:
            assert after.state is Lifecycle.RUNNING
            assert after.attempts == (before.attempts if before else 0) + 1
            assert state.events()[-1].payload.get("forced", False) is (decision is GateDecision.RERUN)
        else:
            assert after == before


def test_a_running_node_is_entered_once_when_yielding(state: StateService) -> None:
    mosaic = PSOCTMosaicId("p", 1, 1)
    decisions = [enter_flow(state, mosaic, skip_if_running=True) for _ in range(3)]
    assert decisions == [GateDecision.RUN, GateDecision.SKIP_RUNNING, GateDecision.SKIP_RUNNING]


def test_milestone_gate_skips_a_reached_milestone(state: StateService) -> None:
    batch = PSOCTBatchId("p", 1, 1, 1)
    assert enter_milestone(state, batch, "archived") is GateDecision.RUN
    with state.update(batch) as node:
        node.set_flag("archived")
        node.set_flag("uploaded")
    assert enter_milestone(state, batch, "archived") is GateDecision.SKIP_COMPLETED
    view = state.peek(batch)
    assert view is not None and view.flags["uploaded"]


def test_forced_milestone_resets_dependants_before_running(state: StateService) -> None:
    batch = PSOCTBatchId("p", 1, 1, 2)
    with state.update(batch) as node:
        for flag in ("complexed", "volume_processed", "enface_processed", "archived", "uploaded"):
            node.set_flag(flag)
    assert enter_milestone(state, batch, "archived", force=True) is GateDecision.RERUN
    view = state.peek(batch)
    assert view is not None
    assert not view.flags["archived"] and not view.flags["uploaded"]
    assert view.flags["complexed"] and view.flags["enface_processed"]
    assert state.events()[-1].payload["flags"] == ["archived", "uploaded"]


def test_guarded_milestone_sets_and_announces_on_success(state: StateService) -> None:
    strip = LSMStripId("q", 1, 1, 1)
    calls: list[int] = []

    def upload() -> dict[str, str]:
        calls.append(1)
        return {"asset": "sub-x/strip.ome.zarr"}

    assert guarded_milestone(state, strip, "uploaded", upload) is GateDecision.RUN
    assert guarded_milestone(state, strip, "uploaded", upload) is GateDecision.SKIP_COMPLETED
    assert calls == [1]
    event = state.events()[-1]
    assert event.name == "linc.opticstream.lsm.strip.uploaded"
    assert event.payload["asset"] == "sub-x/strip.ome.zarr"
    assert guarded_milestone(state, strip, "uploaded", upload, force=True) is GateDecision.RERUN
    assert calls == [1, 1]


def test_guarded_milestone_records_a_failure_and_reraises(state: StateService) -> None:
    strip = LSMStripId("q", 1, 1, 2)
    with state.update(strip) as node:
        node.set_flag("compressed")

    def broken() -> None:
        raise OSError("archive disk full")

    with pytest.raises(OSError, match="archive disk full"):
        guarded_milestone(state, strip, "compressed", broken, force=True)
    view = state.peek(strip)
    assert view is not None and not view.flags["compressed"]
    assert view.last_error == "compressed: OSError: archive disk full"
    assert view.state is Lifecycle.PENDING
    event = state.events()[-1]
    assert event.name == "linc.opticstream.lsm.strip.milestone_failed"
    assert event.payload == {"strip_ident": strip.to_dict(), "flag": "compressed",
                             "error": "OSError: archive disk full"}
