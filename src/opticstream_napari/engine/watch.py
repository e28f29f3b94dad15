"""Deciding when a raw unit of work is complete: stable fingerprints, polled or notified.

A candidate (one PS-OCT tile file, one LSM strip folder) is handed on once its fingerprint,
the sorted (relative path, size, mtime) of its files, has not changed for
``stability_seconds``. Filesystem notifications (watchdog) only wake the loop early; polling
is the ground truth, so a network mount without notifications still works.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

Fingerprint = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A unit of raw data on disk and the identity it will be processed as."""

    key: Hashable
    paths: tuple[Path, ...]
    fingerprint: Fingerprint = field(compare=False)


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
    """Remembers when each candidate's fingerprint last changed."""

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
            previous = self._seen.get(key)
            if previous is None or previous[0] != candidate.fingerprint:
                self._seen[key] = (candidate.fingerprint, now)
                if self.stability_seconds > 0:
                    continue
            elif now - previous[1] < self.stability_seconds:
                continue
            ready.append(candidate)
            del self._seen[key]
        return ready

    @property
    def pending(self) -> int:
        return len(self._seen)


Discover = Callable[[], Mapping[Hashable, Candidate]]


class FolderWatcher:
    """Yields stable candidates of one folder until ``stop`` is set."""

    def __init__(
        self,
        folder: Path,
        discover: Discover,
        *,
        stability_seconds: float = 15.0,
        poll_interval: float = 5.0,
        notifications: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not folder.is_dir():
            raise FileNotFoundError(f"acquisition folder {folder} does not exist or is not a folder")
        self.folder = folder
        self.discover = discover
        self.poll_interval = poll_interval
        self.tracker = StabilityTracker(stability_seconds, clock)
        self._wake = threading.Event()
        self._notifications = notifications

    def poll(self) -> list[Candidate]:
        """One round: rediscover candidates and return those that became stable."""
        return self.tracker.observe(self.discover())

    def run(self, stop: threading.Event) -> Iterator[Candidate]:
        observer = self._start_notifications() if self._notifications else None
        try:
            while not stop.is_set():
                yield from self.poll()
                wait = self.poll_interval
                if self.tracker.pending:
                    wait = min(wait, max(self.tracker.stability_seconds / 4, 0.05))
                self._wake.wait(wait)
                self._wake.clear()
        finally:
            if observer is not None:
                observer.stop()
                observer.join(timeout=5)

    def wake(self) -> None:
        self._wake.set()

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
