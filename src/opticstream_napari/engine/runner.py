"""The engine: watch a raw folder, claim units through the state service, run them, follow up.

One coordinator thread (:meth:`Engine.run`) does all bookkeeping; the executor does all heavy
work. Each loop it

1. polls the watcher: a unit whose files stayed unchanged for ``stability_seconds`` is
   registered with a ``ready`` event naming its raw source (done units are skipped unless
   ``force``; a failed one waits for ``opticstream retry``);
2. collects finished work: completes or fails the unit's claim (the error text becomes the
   unit's ``last_error``; the rest of the acquisition goes on) and submits the jobs the
   pipeline returns (readiness → mosaic → slice, live previews);
3. claims pending units (``claims.claim``: key order, expired claims of dead workers returned
   to the queue first) for every free executor slot, and submits them.

A background thread heartbeats this engine's claims. Killed with SIGKILL, the engine leaves
running units behind; the next engine recovers them once their heartbeat is older than
``heartbeat_timeout`` and finishes what was ready (:meth:`Pipeline.resume`), so no unit is
lost or completed twice. State calls ride out database restarts (:mod:`.reconnect`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import Future
from contextlib import ExitStack
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import select

from opticstream_napari.config import LSMScanConfig, PSOCTScanConfig
from opticstream_napari.engine.discover import MosaicRanges
from opticstream_napari.engine.executors import Executor
from opticstream_napari.engine.jobs import Job, Pipeline, WorkUnit
from opticstream_napari.engine.messages import (
    EngineMessage,
    Listener,
    Listeners,
    UnitCompleted,
    UnitFailed,
    UnitStarted,
)
from opticstream_napari.engine.reconnect import reliably
from opticstream_napari.engine.watch import Candidate, Fingerprint, FolderWatcher, readable
from opticstream_napari.identity import Identity, identity_from_dict
from opticstream_napari.state import claims
from opticstream_napari.state.errors import ClaimLost
from opticstream_napari.state.events import event_name, ident_key
from opticstream_napari.state.hierarchy import WORK_UNIT_LEVEL
from opticstream_napari.state.lifecycle import DONE_STATES, Lifecycle
from opticstream_napari.state.models import EventLog
from opticstream_napari.state.service import StateService
from opticstream_napari.state.summary import summarize

log = logging.getLogger(__name__)

SOURCE_KEY = {"tile": "path", "strip": "strip_path"}  # the ready event's payload key (spec 6.2)
PREFETCH = 2


class Until(StrEnum):
    STOPPED = "stopped"    # watch until asked to stop
    IDLE = "idle"          # one pass: stop when nothing is settling, queued or running
    COMPLETE = "complete"  # stop when the expected slices are complete


@dataclass
class RunReport:
    """What one run did; ``failed`` lists units and steps that failed, with their errors."""

    completed: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    stopped: bool = False


@dataclass(eq=False)
class _Flight:
    job: Job
    claim: claims.Claim | None
    started: float


class Engine:
    """Process one project's acquisition folder (``raw_folder=None``: only what is queued)."""

    def __init__(
        self,
        config: PSOCTScanConfig | LSMScanConfig,
        raw_folder: Path | None,
        state: StateService,
        executor: Executor,
        *,
        stability_seconds: float = 15.0,
        poll_interval: float = 5.0,
        force: bool = False,
        mosaic_ranges: MosaicRanges | None = None,
        slice_offset: int = 0,
        incomplete_grace: float = 120.0,
        heartbeat_interval: float = 5.0,
        heartbeat_timeout: float = claims.DEFAULT_HEARTBEAT_TIMEOUT,
        worker_id: str | None = None,
        notifications: bool = True,
        live_previews: bool = True,
    ) -> None:
        if heartbeat_timeout <= heartbeat_interval:
            raise ValueError(
                f"heartbeat_timeout ({heartbeat_timeout} s) must exceed heartbeat_interval ({heartbeat_interval} s)"
            )
        self.config = config
        self.state = state
        self.executor = executor
        self.listeners = Listeners()
        self.worker = worker_id or claims.default_worker_id()
        self.force = force
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self.pipeline: Pipeline = make_pipeline(
            config, raw_folder, state, self.listeners.emit, task_threads=executor.task_threads,
            mosaic_ranges=mosaic_ranges, slice_offset=slice_offset, incomplete_grace=incomplete_grace, force=force,
            live_previews=live_previews,
        )
        self.project = self.pipeline.project
        self._unit_level = WORK_UNIT_LEVEL[self.project.modality]
        self._wake = threading.Event()
        self.watcher = None if raw_folder is None else FolderWatcher(
            Path(raw_folder), self._unhandled, stability_seconds=stability_seconds,
            poll_interval=poll_interval, notifications=notifications, wake=self._wake,
        )
        self._poll_interval = poll_interval
        self._claim_interval = max(poll_interval, min(5.0, heartbeat_timeout / 4))
        self._handled: dict[Hashable, Fingerprint] = {}
        self._sources: dict[Identity, Path] = {}
        self._recorded: dict[Identity, Path] | None = None
        self._forced: set[Identity] = set()
        self._flights: set[_Flight] = set()
        self._claimed: dict[Identity, _Flight] = {}
        self._results: queue.SimpleQueue[tuple[_Flight, Future[Any]]] = queue.SimpleQueue()
        self._queue_dirty = True
        self._next_claim = 0.0
        self._report = RunReport()
        self._stop = threading.Event()
        self._abandon = False
        self.listeners.add(self._record)

    def _record(self, message: EngineMessage) -> None:
        if isinstance(message, UnitCompleted):
            self._report.completed += 1
            self._report.failed.pop(str(message.ident), None)
        elif isinstance(message, UnitFailed):
            self._report.failed[str(message.ident)] = message.error

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop(self, *, abandon: bool = False) -> None:
        """Ask a running :meth:`run` to return (thread-safe).

        By default the work in flight is finished and recorded first. With ``abandon`` (the
        widget's Stop and Cancel), an executor that can end its work at once does so, the claimed
        units go back to pending and unclaimed follow-ups are dropped: the next run resumes them,
        as after a crash.
        """
        self._abandon = self._abandon or abandon
        self._stop.set()
        self._wake.set()

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Subscribe to :mod:`engine.messages`; returns the unsubscribe function."""
        return self.listeners.add(listener)

    # ------------------------------------------------------------------ running

    def run(self, stop: threading.Event | None = None, *, until: Until = Until.STOPPED,
            slices: int | None = None) -> RunReport:
        """Process until ``stop`` is set (or, per ``until``, idle or ``slices`` slices complete).

        On stop, claiming ends, work in flight is finished and recorded, and the run returns.
        """
        if until is Until.COMPLETE and not slices:
            raise ValueError("until=COMPLETE needs the number of slices to wait for")
        self._stop = stop or threading.Event()
        self._report = RunReport()
        start = time.monotonic()
        with ExitStack() as stack:
            stack.enter_context(claims.keep_alive(self.state, self.project, self.worker, self.heartbeat_interval))
            if self.watcher is not None:
                stack.enter_context(self.watcher)
            self._submit_all(self._reliably("resume", self.pipeline.resume))
            self._loop(until, slices)
            if not (self._abandon and self._abandon_flights()):
                self._drain()
        self._report.seconds = time.monotonic() - start
        self._report.stopped = self._stop.is_set()
        return self._report

    def retry(self, ident: Identity, stop: threading.Event | None = None) -> RunReport:
        """Return ``ident`` to pending (see the pipeline's ``retry``) and process until idle."""
        self._stop = stop or threading.Event()
        self._reliably("retry", self.pipeline.retry, ident)
        self._queue_dirty = True
        return self.run(self._stop, until=Until.IDLE)

    def _loop(self, until: Until, slices: int | None) -> None:
        while not self._stop.is_set():
            self._collect()
            if self.watcher is not None:
                for candidate in self.watcher.poll_if_due():
                    self._hand_on(candidate)
                    self._claim()
            self._claim()
            if self._finished(until, slices):
                return
            wait = self.watcher.seconds_until_due() if self.watcher is not None else self._poll_interval
            if self._queue_dirty and len(self._claimed) < self._capacity:
                wait = 0.0
            self._wake.wait(wait)
            self._wake.clear()

    def _reliably(self, what: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return reliably(self._stop, what, call, *args, **kwargs)

    def _abandon_flights(self) -> bool:
        """End the work in flight without waiting, if the executor can; claimed units return to pending."""
        if not self.executor.cancel_running():
            return False
        for flight in self._flights:
            if flight.claim is not None:
                self._reliably(f"releasing {flight.claim.ident}", claims.release, self.state, flight.claim,
                               "stopped before it finished")
                log.info("%s stopped before it finished; it is pending again", flight.claim.ident)
        self._flights.clear()
        self._claimed.clear()
        return True

    def _drain(self) -> None:
        """Finish and record the work in flight; follow-up jobs are left to the next run."""
        while self._flights:
            flight, future = self._results.get()
            self._finish(flight, future, follow_up=False)

    # ------------------------------------------------------------------ raw units

    def _unhandled(self) -> Mapping[Hashable, Candidate]:
        found = self.pipeline.discover()
        return {k: c for k, c in found.items() if self._handled.get(k) != c.fingerprint}

    def _hand_on(self, candidate: Candidate) -> None:
        """Register a stable unit (``ready`` with its source) unless the state says it is done."""
        if not all(readable(path) for path in candidate.paths):
            log.info("%s is not readable yet; it waits", candidate.source)
            return
        unit: Any = candidate.key
        self._sources[unit] = candidate.source
        self._reliably(f"registering {unit}", self._register, unit, candidate.source)
        self._handled[unit] = candidate.fingerprint

    def _register(self, unit: WorkUnit, source: Path) -> None:
        """One transaction: a new unit (never started) is announced ``ready`` with its source."""
        extra = {SOURCE_KEY[unit.level]: str(source)}
        with self.state.update(unit) as node:
            state = node.state
            if state is Lifecycle.PENDING and node.attempts == 0:
                node.announce("ready", extra)
            elif state is Lifecycle.FAILED:
                log.info("%s failed earlier (%s); `opticstream retry` runs it again", unit, node.view().last_error)
            elif state in DONE_STATES and self.force and unit not in self._forced:
                node.mark_pending({"reason": "forced"})
                node.announce("ready", extra)
                self._forced.add(unit)
                state = Lifecycle.PENDING
        if state in (Lifecycle.PENDING, Lifecycle.RUNNING):
            self._queue_dirty = True

    def _source_of(self, unit: Identity) -> Path | None:
        """Where a unit's raw data is: seen by this engine, else as recorded by its ``ready`` event."""
        if unit in self._sources:
            return self._sources[unit]
        if self._recorded is None or unit not in self._recorded:
            self._recorded = recorded_sources(self.state, self.project.modality, self.project.name, self._unit_level)
        return self._recorded.get(unit)

    # ------------------------------------------------------------------ claims and jobs

    @property
    def _capacity(self) -> int:
        """Units claimed at once: twice the executor's slots, so a worker that finishes a tile
        starts the next queued one at once instead of waiting for the coordinator's bookkeeping."""
        return PREFETCH * self.executor.slots

    def _claim(self) -> None:
        free = self._capacity - len(self._claimed)
        now = time.monotonic()
        if free <= 0 or (not self._queue_dirty and now < self._next_claim):
            return
        taken = self._reliably(
            "claiming", claims.claim, self.state, self.project, self.worker, limit=free,
            heartbeat_timeout=self.heartbeat_timeout,
        )
        self._queue_dirty = len(taken) == free
        self._next_claim = now + self._claim_interval
        for held in taken:
            if held.ident in self._claimed:
                continue  # our own unit, re-claimed after a heartbeat gap: it is already running
            source = self._source_of(held.ident)
            if source is None or not source.exists():
                error = f"no raw data found for {held.ident} (looked for {source or 'a recorded ready event'})"
                self._reliably("failing a claim", _finish_claim, partial(claims.fail, self.state, held, error),
                               self.state, held)
                self.listeners.emit(UnitFailed(held.ident, error))
                continue
            self._submit(self.pipeline.unit_job(held.ident, source), held)

    def _submit_all(self, jobs: list[Job]) -> None:
        for job in jobs:
            self._submit(job, None)

    def _submit(self, job: Job, held: claims.Claim | None) -> None:
        flight = _Flight(job, held, time.monotonic())
        self._flights.add(flight)
        if held is not None:
            self._claimed[held.ident] = flight
            self.listeners.emit(UnitStarted(held.ident))
        future = self.executor.submit(job.fn, *job.args)

        def arrived(done: Future[Any]) -> None:
            self._results.put((flight, done))
            self._wake.set()

        future.add_done_callback(arrived)

    def _collect(self) -> None:
        while True:
            try:
                flight, future = self._results.get_nowait()
            except queue.Empty:
                return
            self._finish(flight, future, follow_up=True)

    def _finish(self, flight: _Flight, future: Future[Any], *, follow_up: bool) -> None:
        self._flights.discard(flight)
        job, held = flight.job, flight.claim
        error = future.exception()
        message = f"{type(error).__name__}: {error}" if error is not None else ""
        if held is not None:
            self._claimed.pop(held.ident, None)
            self._queue_dirty = True
            seconds = time.monotonic() - flight.started
            if error is not None:
                finish: Callable[[], None] = partial(claims.fail, self.state, held, message)
            else:
                finish = partial(claims.complete, self.state, held, {"seconds": round(seconds, 3)}, flags=job.flags)
            if not self._reliably(f"recording {held.ident}", _finish_claim, finish, self.state, held):
                self._reliably(f"dropping {held.ident}", job.on_error, "claim lost; result dropped")
                return
            if error is not None:
                log.error("%s failed: %s", held.ident, message)
                self.listeners.emit(UnitFailed(held.ident, message))
            else:
                self.listeners.emit(UnitCompleted(held.ident, seconds))
        follow = job.on_error if error is not None else job.on_done
        argument = message if error is not None else future.result()
        jobs = self._reliably(f"following up {job.ident}", follow, argument)
        if follow_up and not self._stop.is_set():
            self._submit_all(jobs)

    # ------------------------------------------------------------------ completion

    def _finished(self, until: Until, slices: int | None) -> bool:
        if until is Until.STOPPED or self._flights or not self._settled():
            return False
        return until is Until.IDLE or self._slices_complete(slices or 0)

    def _settled(self) -> bool:
        """Nothing settling on disk, nothing queued, and no unit running elsewhere (e.g. a dead
        worker's claim that will be recovered)."""
        if self.watcher is not None and self.watcher.tracker.pending:
            return False
        if self._queue_dirty:
            return False
        counts = self._reliably("summarising", summarize, self.state, self.project)
        level = self._unit_level
        pending = sum(s.counts[level][Lifecycle.PENDING] + s.counts[level][Lifecycle.RUNNING] for s in counts.values())
        if pending > len(self._claimed):
            self._queue_dirty = time.monotonic() >= self._next_claim
            return False
        return True

    def _slices_complete(self, slices: int) -> bool:
        counts = self._reliably("summarising", summarize, self.state, self.project)
        if len(counts) < slices:
            return False
        return all(
            summary.done(level) == summary.total(level) for summary in counts.values() for level in summary.counts
        )


def _finish_claim(finish: Callable[[], None], state: StateService, held: claims.Claim) -> bool:
    """Complete or fail a claim; False when the claim was lost (recovered or reset meanwhile).

    After a dropped connection the retried call may find its own earlier commit: the unit is
    then already finished at this attempt, which counts as done.
    """
    try:
        finish()
    except ClaimLost as lost:
        view = state.peek(held.ident)
        if view is not None and view.attempts == held.attempt and view.state in (*DONE_STATES, Lifecycle.FAILED):
            return True
        log.warning("%s", lost)
        return False
    return True


def recorded_sources(state: StateService, modality: str, project: str, level: str) -> dict[Identity, Path]:
    """The raw source of every unit of a project, from the latest ``ready`` event of each."""
    name = event_name(modality, level, "ready")
    query = (select(EventLog.payload).where(EventLog.project == project, EventLog.name == name)  # type: ignore[arg-type]
             .order_by(EventLog.id))  # type: ignore[arg-type]
    sources: dict[Identity, Path] = {}
    with state.database.peeking() as session:
        for (payload,) in session.execute(query):
            source = payload.get(SOURCE_KEY[level])
            if source:
                sources[identity_from_dict(modality, level, payload[ident_key(level)])] = Path(source)
    return sources


def make_pipeline(
    config: PSOCTScanConfig | LSMScanConfig,
    raw_folder: Path | None,
    state: StateService,
    emit: Callable[[EngineMessage], None],
    *,
    task_threads: int | None,
    mosaic_ranges: MosaicRanges | None,
    slice_offset: int,
    incomplete_grace: float,
    force: bool,
    live_previews: bool,
) -> Pipeline:
    """The pipeline of the config's modality."""
    folder = Path(raw_folder) if raw_folder is not None else config.project_base_path
    if isinstance(config, PSOCTScanConfig):
        from opticstream_napari.engine.pipelines.psoct import PSOCTPipeline

        return PSOCTPipeline(config, folder, state, emit, task_threads=task_threads, mosaic_ranges=mosaic_ranges,
                             slice_offset=slice_offset, incomplete_grace=incomplete_grace, force=force,
                             live_previews=live_previews)
    from opticstream_napari.engine.pipelines.lsm import LSMPipeline

    return LSMPipeline(config, folder, state, emit, task_threads=task_threads, slice_offset=slice_offset,
                       force=force)
