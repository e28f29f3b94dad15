"""Listeners: every callback gets every message; a broken one is logged and skipped."""

from __future__ import annotations

from opticstream_napari.engine.messages import Listeners, SliceDone, UnitFailed
from opticstream_napari.identity import PSOCTSliceId, PSOCTTileId


def test_a_failing_listener_does_not_stop_the_others(caplog) -> None:
    listeners = Listeners()
    seen: list[object] = []

    def broken(_message: object) -> None:
        raise RuntimeError("listener bug")

    listeners.add(broken)
    remove = listeners.add(seen.append)
    done = SliceDone(PSOCTSliceId("p", 1))
    listeners.emit(done)
    assert seen == [done] and "listener bug" in caplog.text
    remove()
    listeners.emit(UnitFailed(PSOCTTileId("p", 1, 1, 1, 1), "boom"))
    assert seen == [done]
