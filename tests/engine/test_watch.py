import threading
from pathlib import Path

import pytest

from opticstream_napari.engine.watch import (
    Candidate,
    FolderWatcher,
    StabilityTracker,
    fingerprint,
    readable,
)
from opticstream_napari.simulate.live import Pace, write_progressively


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _candidate(key: str, print_: int) -> Candidate:
    return Candidate(key, (Path(key),), (("f", print_, 0),))


def test_a_candidate_is_ready_once_after_staying_unchanged() -> None:
    clock = FakeClock()
    tracker = StabilityTracker(15, clock)
    assert tracker.observe({"a": _candidate("a", 1)}) == []
    clock.now = 10
    assert tracker.observe({"a": _candidate("a", 2)}) == []
    clock.now = 24
    assert tracker.observe({"a": _candidate("a", 2)}) == []
    clock.now = 25
    assert [c.key for c in tracker.observe({"a": _candidate("a", 2)})] == ["a"]
    assert tracker.pending == 0
    clock.now = 100
    assert tracker.observe({"a": _candidate("a", 2)}) == []


def test_vanished_candidates_are_dropped() -> None:
    clock = FakeClock()
    tracker = StabilityTracker(5, clock)
    tracker.observe({"a": _candidate("a", 1), "b": _candidate("b", 1)})
    clock.now = 3
    tracker.observe({"b": _candidate("b", 1)})
    assert tracker.pending == 1
    clock.now = 4
    assert tracker.observe({"a": _candidate("a", 1)}) == []


def test_zero_stability_hands_on_immediately() -> None:
    assert [c.key for c in StabilityTracker(0).observe({"a": _candidate("a", 1)})] == ["a"]
    with pytest.raises(ValueError, match="stability_seconds"):
        StabilityTracker(-1)


def test_fingerprint_and_readability(tmp_path: Path) -> None:
    f = tmp_path / "x.bin"
    f.write_bytes(b"abc")
    print_ = fingerprint(tmp_path, (f,))
    assert print_ is not None and print_[0][:2] == ("x.bin", 3)
    assert readable(f)
    assert fingerprint(tmp_path, (tmp_path / "gone",)) is None
    assert not readable(tmp_path / "gone")


def test_watcher_waits_for_a_growing_file(tmp_path: Path) -> None:
    target = tmp_path / "tile.bin"
    data = bytes(range(256)) * 400

    def discover() -> dict:
        if not target.exists():
            return {}
        found = fingerprint(tmp_path, (target,))
        return {} if found is None else {"tile": Candidate("tile", (target,), found)}

    writer = threading.Thread(target=write_progressively, args=(target, data, Pace(0.4, pieces=4)))
    watcher = FolderWatcher(tmp_path, discover, stability_seconds=0.5, poll_interval=0.05)
    stop = threading.Event()
    writer.start()
    results = []
    for candidate in watcher.run(stop):
        results.append((candidate, target.stat().st_size))
        stop.set()
    writer.join()
    assert len(results) == 1
    assert results[0][1] == len(data)
    assert results[0][0].fingerprint[0][1] == len(data)


def test_watcher_needs_an_existing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        FolderWatcher(tmp_path / "missing", dict)


def test_a_candidate_may_need_longer_to_settle() -> None:
    clock = FakeClock()
    tracker = StabilityTracker(1, clock)
    growing = Candidate("a", (Path("a"),), (("f", 1, 0),), settle_seconds=10)
    assert tracker.observe({"a": growing}) == []
    clock.now = 5
    assert tracker.observe({"a": growing}) == []
    clock.now = 10
    assert tracker.observe({"a": growing}) == [growing]


def test_polls_are_due_by_interval_or_after_a_notification(tmp_path: Path) -> None:
    clock = FakeClock()
    scans = []
    watcher = FolderWatcher(tmp_path, lambda: scans.append(clock.now) or {}, stability_seconds=1,
                            poll_interval=5, notifications=False, clock=clock)
    watcher.poll_if_due()
    clock.now = 4
    watcher.poll_if_due()
    assert scans == [0] and watcher.seconds_until_due() == 1
    watcher.wake()
    assert watcher.seconds_until_due() == 0
    watcher.poll_if_due()
    assert scans == [0, 4] and watcher.seconds_until_due() == 5
