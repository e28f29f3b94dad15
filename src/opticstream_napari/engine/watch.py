"""Deciding when a raw unit of work is complete: stable fingerprints, polled or notified.

A candidate (one PS-OCT tile file, one LSM strip folder) is handed on once its fingerprint,
the sorted (relative path, size, mtime) of its files, has not changed for
``stability_seconds`` (or the candidate's own ``settle_seconds``, e.g. a longer grace for a file
whose size is not yet the size its geometry implies). Filesystem notifications (watchdog) only
wake the loop early; polling is the ground truth, so a network mount without notifications
still works.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)
# watchdog's inotify observer re-adds the watch of a subfolder created inside a recursive watch and
# warns that it overwrites its own callback; the watch stays correct, so the warning is noise.
warnings.filterwarnings("ignore", "Callback with id", RuntimeWarning, "watchdog.observers.inotify")

Fingerprint = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A unit of raw data on disk and the identity it will be processed as."""

    key: Hashable
    paths: tuple[Path, ...]
    fingerprint: Fingerprint = field(compare=False)
    settle_seconds: float | None = field(default=None, compare=False)
    folder: Path | None = field(default=None, compare=False)

    @property
    def source(self) -> Path:
        """What the work reads: the folder of a multi-file unit (an LSM strip), else its one file."""
        return self.folder if self.folder is not None else self.paths[0]


def fingerprint(root: Path, paths: tuple[Path, ...]) -> Fingerprint | None:
    """Sorted (relative path, size, mtime_ns) of ``paths``; None if one vanished meanwhile."""
    entries = []
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            return None
        entries.append((str(path.relative_to(root)) if path.is_relative_to(root) else str(path),
                        stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(entries))


def readable(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError:
        return False
    return True


class StabilityTracker:
    """Remembers when each candidate's fingerprint last changed.

    A candidate's ``settle_seconds``, when set, replaces ``stability_seconds`` for it.
    """

    def __init__(self, stability_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        if stability_seconds < 0:
            raise ValueError(f"stability_seconds must be >= 0, found {stability_seconds}")
        self.stability_seconds = stability_seconds
        self._clock = clock
        self._seen: dict[Hashable, tuple[Fingerprint, float]] = {}

    def observe(self, candidates: Mapping[Hashable, Candidate]) -> list[Candidate]:
        """Candidates stable for long enough; each is returned once, then forgotten.

        A candidate that changes again restarts its clock; one that vanishes is dropped.
        """
        now = self._clock()
        for key in list(self._seen):
            if key not in candidates:
                del self._seen[key]
        ready = []
        for key, candidate in candidates.items():
            needed = self.stability_seconds if candidate.settle_seconds is None else candidate.settle_seconds
            previous = self._seen.get(key)
            if previous is None or previous[0] != candidate.fingerprint:
                self._seen[key] = (candidate.fingerprint, now)
                if needed > 0:
                    continue
            elif now - previous[1] < needed:
                continue
            ready.append(candidate)
            del self._seen[key]
        return ready

    @property
    def pending(self) -> int:
        return len(self._seen)


Discover = Callable[[], Mapping[Hashable, Candidate]]


class FolderWatcher:
    """Stable candidates of one folder: poll it yourself, or iterate :meth:`run` until ``stop``.

    ``wake`` is set by filesystem notifications; a caller that also waits for other things
    (the engine waits for results too) passes its own event, waits on it, and calls
    :meth:`poll_if_due`, which scans the folder only when a notification came or the poll
    interval (shorter while candidates settle) has passed.
    """

    MIN_GAP = 0.25  # seconds between scans however many notifications arrive (at most the poll interval)

    def __init__(
        self,
        folder: Path,
        discover: Discover,
        *,
        stability_seconds: float = 15.0,
        poll_interval: float = 5.0,
        notifications: bool = True,
        clock: Callable[[], float] = time.monotonic,
        wake: threading.Event | None = None,
    ) -> None:
        if not folder.is_dir():
            raise FileNotFoundError(f"acquisition folder {folder} does not exist or is not a folder")
        self.folder = folder
        self.discover = discover
        self.poll_interval = poll_interval
        self.tracker = StabilityTracker(stability_seconds, clock)
        self.wake_event = wake or threading.Event()
        self._notifications = notifications
        self._observer: object | None = None
        self._clock = clock
        self._changed = True
        self._last = -float("inf")

    def __enter__(self) -> FolderWatcher:
        if self._notifications:
            self._observer = self._start_notifications()
        return self

    def __exit__(self, *_exc: object) -> None:
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()  # type: ignore[attr-defined]
            observer.join(timeout=5)  # type: ignore[attr-defined]

    def poll(self) -> list[Candidate]:
        """One round: rediscover candidates and return those that became stable."""
        self._changed = False
        self._last = self._clock()
        return self.tracker.observe(self.discover())

    def poll_if_due(self) -> list[Candidate]:
        return self.poll() if self.seconds_until_due() <= 0 else []

    def seconds_until_due(self) -> float:
        """How long until :meth:`poll_if_due` scans again (0: now)."""
        gap = min(self.MIN_GAP, self.poll_interval) if self._changed else self.next_wait()
        return max(0.0, self._last + gap - self._clock())

    def next_wait(self) -> float:
        """Seconds until another poll can change anything: shorter while candidates settle."""
        if self.tracker.pending:
            return min(self.poll_interval, max(self.tracker.stability_seconds / 4, 0.05))
        return self.poll_interval

    def run(self, stop: threading.Event) -> Iterator[Candidate]:
        with self:
            while not stop.is_set():
                yield from self.poll()
                self.wake_event.wait(self.next_wait())
                self.wake_event.clear()

    def wake(self) -> None:
        self._changed = True
        self.wake_event.set()

    def _start_notifications(self) -> object | None:
        try:
            from watchdog.events import FileSystemEventHandler
            from watchdog.observers import Observer
        except ImportError:  # pragma: no cover - watchdog is in the lock
            return None

        watcher = self

        class _Wake(FileSystemEventHandler):
            def on_any_event(self, event: object) -> None:
                watcher.wake()

        observer = Observer()
        try:
            observer.schedule(_Wake(), str(self.folder), recursive=True)
            observer.start()
        except OSError as error:
            log.warning("no filesystem notifications for %s (%s); polling only", self.folder, error)
            return None
        return observer
