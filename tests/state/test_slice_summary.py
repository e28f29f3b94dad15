"""Per-slice counts of each state at each level, in one query."""

from __future__ import annotations

from opticstream_napari.identity import LSMStripId, PSOCTBatchId, PSOCTTileId
from opticstream_napari.state.hierarchy import ProjectKey
from opticstream_napari.state.lifecycle import Lifecycle
from opticstream_napari.state.service import StateService
from opticstream_napari.state.summary import summarize

P = ProjectKey("psoct", "p")


def test_counts_per_slice_and_level(state: StateService) -> None:
    state.register([PSOCTTileId("p", s, m, b, t) for s in (1, 2) for m in (1, 2) for b in (1, 2)
                    for t in (1, 2, 3)])
    with state.update(PSOCTTileId("p", 1, 1, 1, 1)) as node:
        node.mark_started()
        node.mark_completed()
    with state.update(PSOCTTileId("p", 1, 1, 1, 2)) as node:
        node.mark_failed("boom")
    with state.update(PSOCTBatchId("p", 2, 2, 2)) as node:
        node.mark_skipped("outside tissue")
    summary = summarize(state, P)
    assert list(summary) == [1, 2]
    one = summary[1]
    assert one.counts["tile"] == {"pending": 10, "running": 0, "completed": 1, "failed": 1,
                                  "skipped": 0}
    assert one.total("tile") == 12 and one.done("tile") == 1
    assert one.total("batch") == 4 and one.total("mosaic") == 2 and one.total("slice") == 1
    assert summary[2].counts["batch"][Lifecycle.SKIPPED] == 1 and summary[2].done("batch") == 1
    assert list(summarize(state, P, slices=[2])) == [2]


def test_empty_and_other_modality(state: StateService) -> None:
    assert summarize(state, P) == {}
    state.register([LSMStripId("p", 3, c, s) for c in (1, 2) for s in (1, 2, 3)])
    summary = summarize(state, ProjectKey("lsm", "p"))
    assert set(summary[3].counts) == {"slice", "channel", "strip"}
    assert summary[3].total("strip") == 6 and summary[3].total("channel") == 2
    assert summarize(state, P) == {}
