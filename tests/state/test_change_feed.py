"""The change feed on both backends: order, filters, replay, threads, wake-up, no gaps."""

from __future__ import annotations

import threading
import time

from opticstream_napari.identity import LSMStripId, PSOCTMosaicId, PSOCTTileId
from opticstream_napari.state.eventlog import EventRecord, append_events
from opticstream_napari.state.events import Event
from opticstream_napari.state.feed import ChangeFeed
from opticstream_napari.state.hierarchy import ProjectKey
from opticstream_napari.state.service import StateService

P = ProjectKey("psoct", "p")


def _names(records: list[EventRecord]) -> list[str]:
    return [r.name.rsplit(".", 2)[-2] + "." + r.name.rsplit(".", 1)[-1] for r in records]


def _collect(feed: ChangeFeed, count: int, timeout: float = 5.0) -> list[EventRecord]:
    """Poll until ``count`` records arrived or ``timeout`` passed (then return what came)."""
    deadline = time.monotonic() + timeout
    records: list[EventRecord] = []
    while len(records) < count and time.monotonic() < deadline:
        records += feed.poll(timeout=deadline - time.monotonic())
    return records


def test_new_events_arrive_in_commit_order(state: StateService) -> None:
    state.register([PSOCTTileId("p", 1, 1, 1, 1)])
    with ChangeFeed(state, poll_interval=0.05) as feed:
        assert feed.poll() == []
        tile = PSOCTTileId("p", 1, 1, 1, 2)
        with state.update(tile) as node:
            node.mark_started()
        with state.update(tile) as node:
            node.mark_completed()
        records = _collect(feed, 3)
        assert _names(records) == ["tile.pending", "tile.running", "tile.completed"]
        assert records[-1].ident == tile
        assert feed.poll(timeout=0.2) == []


def test_replay_from_the_start_and_project_filter(state: StateService) -> None:
    state.register([PSOCTTileId("p", 1, 1, 1, 1), LSMStripId("p", 1, 1, 1),
                    PSOCTTileId("other", 1, 1, 1, 1)])
    with ChangeFeed(state, project=P, from_start=True) as feed:
        records = _collect(feed, 4)
    assert len(records) == 4
    assert {(r.modality, r.project) for r in records} == {("psoct", "p")}


def test_a_subscription_calls_back_from_its_thread(state: StateService) -> None:
    received: list[EventRecord] = []
    threads: set[str] = set()
    arrived = threading.Event()

    def on_events(records: list[EventRecord]) -> None:
        threads.add(threading.current_thread().name)
        received.extend(records)
        if any(r.name.endswith("mosaic.ready") for r in records):
            arrived.set()

    subscription = ChangeFeed(state, project=P, poll_interval=0.05).subscribe(on_events)
    with subscription:
        state.announce(PSOCTMosaicId("p", 1, 1), "ready")
        assert arrived.wait(5)
    assert threads == {"opticstream-feed"}
    assert _names(received)[-1] == "mosaic.ready"


def test_a_failing_callback_does_not_stop_the_feed(state: StateService) -> None:
    calls: list[int] = []
    second = threading.Event()

    def flaky(records: list[EventRecord]) -> None:
        calls.append(len(records))
        if len(calls) == 1:
            raise RuntimeError("GUI hiccup")
        second.set()

    with ChangeFeed(state, poll_interval=0.05).subscribe(flaky):
        state.announce(PSOCTMosaicId("p", 1, 1), "ready")
        time.sleep(0.3)
        state.announce(PSOCTMosaicId("p", 1, 2), "ready")
        assert second.wait(5)


def test_iteration_blocks_until_events_come(state: StateService) -> None:
    feed = ChangeFeed(state, poll_interval=0.05)
    threading.Timer(0.2, lambda: state.announce(PSOCTMosaicId("p", 1, 1), "ready")).start()
    seen = []
    for record in feed:
        seen.append(record)
        if record.name.endswith("mosaic.ready"):
            feed.close()
    assert _names(seen)[-1] == "mosaic.ready"


def test_a_writer_elsewhere_wakes_the_feed(database_url: str, backend: str) -> None:
    """PostgreSQL's NOTIFY wakes a feed long before its fallback poll; SQLite polls quickly."""
    reader, writer = StateService.connect(database_url), StateService.connect(database_url)
    interval = 5.0 if backend == "postgres" else 0.05
    try:
        with ChangeFeed(reader, poll_interval=interval) as feed:
            threading.Timer(0.3, lambda: writer.announce(PSOCTMosaicId("p", 1, 1), "ready")).start()
            started = time.monotonic()
            records = feed.poll(timeout=10)
            assert _names(records)[-1] == "mosaic.ready"
            assert time.monotonic() - started < 2.0
    finally:
        reader.close()
        writer.close()


def test_a_transaction_that_commits_late_is_not_skipped(state: StateService) -> None:
    """An event written first but committed last must still be delivered, exactly once."""
    slow, fast = PSOCTMosaicId("p", 1, 1), PSOCTMosaicId("p", 1, 2)
    state.register([slow, fast])
    feed = ChangeFeed(state, poll_interval=0.05)
    written, release = threading.Event(), threading.Event()

    def slow_writer() -> None:
        with state.database.writing() as session:
            append_events(session, [Event.of(slow, "ready")])
            session.flush()
            written.set()
            release.wait(10)

    holder = threading.Thread(target=slow_writer)
    holder.start()
    assert written.wait(10)
    fast_writer = threading.Thread(target=lambda: state.announce(fast, "ready"))
    fast_writer.start()
    time.sleep(0.3)
    early = feed.poll(timeout=0.3)
    release.set()
    holder.join()
    fast_writer.join()
    records = early + _collect(feed, 2 - len(early))
    assert [r.ident for r in records] == [slow, fast]
    assert feed.poll(timeout=0.2) == []
    feed.close()
