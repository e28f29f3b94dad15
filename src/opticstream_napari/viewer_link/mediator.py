"""The mediator: the only code that creates or changes napari layers, on the GUI thread only.

Background threads (the engine run, the state follower, short lookups) pass it small messages:
identities, regions, summaries, paths, lazy arrays.
"""

from __future__ import annotations

import atexit
import gc
import heapq
import itertools
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pint
from napari.qt.threading import FunctionWorker, create_worker
from napari.utils.notifications import show_info, show_warning
from qtpy.QtCore import QObject, QTimer, Signal

from opticstream_napari.config import PSOCTScanConfig
from opticstream_napari.engine.messages import (
    ChannelStitched,
    EngineMessage,
    MosaicFinalised,
    RegionWritten,
    UnitCompleted,
    VolumesStitched,
)
from opticstream_napari.identity import Identity, LSMStripId
from opticstream_napari.state.hierarchy import WORK_UNIT_LEVEL
from opticstream_napari.state.lifecycle import Lifecycle
from opticstream_napari.state.summary import SliceSummary
from opticstream_napari.viewer_link.engine_run import EngineOptions, EngineRun, EngineWorker, RunProgress, run_engine
from opticstream_napari.viewer_link.layer_specs import (
    PLACEHOLDER,
    UNITS,
    LayerKey,
    LayerSpec,
    ScanConfigModel,
    SliceLayers,
    mosaic_position,
    role_placeholders,
)
from opticstream_napari.viewer_link.live_levels import (
    Patch,
    Region,
    is_live_preview,
    live_slice_layers,
    loaded,
    needs_loading,
    read_patches,
)
from opticstream_napari.viewer_link.state_follower import Failure, StateFollower, StateUpdate, slice_failures
from opticstream_napari.viewer_link.warmup import is_warm, warm_up_layers

if TYPE_CHECKING:
    import napari
    from napari.layers import Layer

    from opticstream_napari.engine.runner import RunReport

log = logging.getLogger(__name__)

TICK_MS = 100  # the GUI thread drains engine messages and refreshes layers at most this often
PROGRESS_INTERVAL = 1.0  # napari's progress bar processes all pending events on each update: update it rarely
EMPTYING_BUDGET_S = 0.015  # per tick: hiding and renaming a layer costs napari 3-8 ms of GUI thread
UNKNOWN = "?"  # the source of a layer whose name no longer says what it shows
NOTIFY_AT_ONCE = 3  # more failures than this in one update become one notification


class ViewerLink(QObject):
    """Engine and state in, layers and summaries out; everything it emits arrives on the GUI thread.

    Signals: ``stateChanged(dict[int, SliceSummary])`` (every slice, after each update),
    ``failuresFound(int, tuple[Failure, ...])`` (answer to :meth:`request_failures`),
    ``runningChanged(bool)``, ``message(str)`` (status text for the operator).
    """

    stateChanged = Signal(object)
    failuresFound = Signal(int, object)
    runningChanged = Signal(bool)
    message = Signal(str)
    _stateArrived = Signal(object)
    _stateFailed = Signal(str)

    def __init__(self, viewer: napari.viewer.Viewer, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self.config: ScanConfigModel | None = None
        self.options = EngineOptions()
        self.preview_level = 0
        self.summaries: dict[int, SliceSummary] = {}
        self._follower: StateFollower | None = None
        self._run: EngineRun | None = None
        self._next_run: EngineRun | None = None
        self._worker: EngineWorker | None = None
        self._progress: RunProgress | None = None
        self._inbox: deque[EngineMessage] = deque()
        self._pending: list[tuple[int, int, LayerSpec]] = []
        self._order = itertools.count()
        self._layers: dict[LayerKey, Layer] = {}
        self._sources: dict[LayerKey, str] = {}
        self._extents: dict[LayerKey, tuple[int, ...]] = {}
        self._emptied: dict[LayerKey, bool] = {}  # roles hidden because the shown slice has no data for them
        self._to_empty: deque[tuple[LayerKey, int]] = deque()  # of those, the ones not hidden yet, and the slice
        self._dirty: set[LayerKey] = set()
        self._held: dict[LayerKey, list[np.ndarray]] = {}  # live previews' levels in memory (the layer's data)
        self._regions: dict[LayerKey, list[Region]] = {}  # written since the held levels were read
        self._reading: set[LayerKey] = set()
        self._deferred: dict[LayerKey, LayerSpec] = {}  # new data of hidden layers, applied when shown
        self._stale: set[LayerKey] = set()  # held previews that missed regions while hidden
        self._jobs: set[FunctionWorker] = set()
        self._scanning: set[int] = set()
        self._rescan: set[int] = set()
        self.shown_slice: int | None = None
        self._newest = 0
        self._follow_newest = True
        self._closed = False
        self._fitted = False
        self._freeze_due = False
        self._frozen = False
        self._ticking = False
        self._progress_stale = False
        self._progress_due = 0.0
        self._stateArrived.connect(self._on_state)
        self._stateFailed.connect(self._on_state_failed)
        self._timer = QTimer(self)
        self._timer.setInterval(TICK_MS)
        self._timer.timeout.connect(self._tick)
        self._timer.start()
        # napari builds its unit registry when the first layer with units arrives (most of a
        # second); build it now, when the operator opens the widget, not mid-acquisition.
        pint.get_application_registry().parse_units(UNITS[0])
        atexit.register(_close_if_alive, weakref.ref(self))

    # ------------------------------------------------------------------ project and state

    def set_config(self, config: ScanConfigModel) -> None:
        """Follow ``config``'s project; a new project or database reconnects, anything else is kept."""
        same = self.config is not None and (
            self.config.modality, self.config.project_name, self.config.database_url,
            self.config.project_base_path) == (
            config.modality, config.project_name, config.database_url, config.project_base_path)
        self.config = config
        if same and self._follower is not None:
            return
        if self._follower is not None:
            self._follower.stop()
        self.summaries = {}
        self.stateChanged.emit({})
        self._follower = StateFollower(config, self._stateArrived.emit, self._stateFailed.emit)
        if not is_warm():
            threading.Thread(target=warm_up_layers, name="opticstream-warm-up", daemon=True).start()
        self.message.emit(f"Project {config.project_name}: connecting to the state database…")

    @property
    def connected(self) -> bool:
        return self._follower is not None and self._follower.state is not None

    def _on_state(self, update: StateUpdate) -> None:
        if self._closed:
            return
        if update.touched is None:
            self.summaries = dict(update.summaries)
            self.message.emit(f"Project {self.config.project_name if self.config else '?'}: "
                              f"{len(self.summaries)} slice(s) in the state database.")
        else:
            for slice_id in update.touched:
                self.summaries.pop(slice_id, None)
            self.summaries.update(update.summaries)
            self.summaries = dict(sorted(self.summaries.items()))
        self.stateChanged.emit(dict(self.summaries))
        self._progress_stale = True
        self._notify(update)
        for mosaic in update.mosaics_done:
            if mosaic.slice == self.shown_slice:
                self.request_layers(mosaic.slice)

    def _on_state_failed(self, error: str) -> None:
        if not self._closed:
            show_warning(f"OpticStream state database: {error}")
            self.message.emit(f"State database problem: {error}")

    def _notify(self, update: StateUpdate) -> None:
        failures = update.failures
        if len(failures) > NOTIFY_AT_ONCE:
            show_warning(f"{len(failures)} units failed; first: {failures[0].ident}: {failures[0].error}")
        else:
            for failure in failures:
                show_warning(f"{failure.ident} failed: {failure.error}")
        for slice_id in update.slices_done:
            show_info(f"Slice {slice_id} is complete.")

    def request_failures(self, slice_id: int) -> None:
        """Look up the slice's failed units off the GUI thread; the answer comes as ``failuresFound``."""
        follower = self._follower
        if follower is None or follower.state is None:
            self.failuresFound.emit(slice_id, ())
            return
        job = create_worker(slice_failures, follower.state, follower.config, slice_id, _start_thread=False)
        job.returned.connect(_weakly(self._answer_failures, slice_id))
        self._start_job(job)

    def _answer_failures(self, slice_id: int, found: tuple[Failure, ...]) -> None:
        if not self._closed:
            self.failuresFound.emit(slice_id, found)

    # ------------------------------------------------------------------ running the engine

    @property
    def running(self) -> bool:
        return self._run is not None

    def start(self, raw_folder: Path, *, force: bool = False) -> None:
        """Watch ``raw_folder`` and process what lands there until :meth:`stop`."""
        if self.config is None:
            raise RuntimeError("load a scan config before starting")
        self._launch(EngineRun(self.config, Path(raw_folder), watch=True, force=force))

    def retry(self, ident: Identity) -> None:
        """Run ``ident`` again; a running engine restarts with the retry first and goes on watching."""
        if self.config is None:
            raise RuntimeError("load a scan config before retrying")
        if self._run is None:
            self._launch(EngineRun(self.config, None, watch=False, retries=(ident,)))
            return
        current = self._next_run or self._run
        retries = current.retries if current is self._next_run else ()
        self._next_run = EngineRun(self.config, current.raw_folder, current.watch, current.force, (*retries, ident))
        self._run.request_stop()
        self.message.emit(f"Restarting to retry {ident}…")

    def stop(self) -> None:
        """Ask the engine to stop: it ends claiming at once and records the work in flight."""
        self._next_run = None
        if self._run is not None:
            self._run.request_stop()
            self.message.emit("Stopping…")

    def prepare_layers(self) -> None:
        """Queue an empty layer for every role of the project that has none yet (see ``role_placeholders``)."""
        if self.config is None:
            return
        for spec in role_placeholders(self.config):
            if not self._present(spec.key):
                heapq.heappush(self._pending, (0, next(self._order), spec))
                self._freeze_due = True
        if self._freeze_due:
            self._freeze()  # the viewer as it is: collections while the layers are made skip it

    def _freeze(self) -> None:
        """Move every object that exists now out of the garbage collector's reach until close.

        A full collection walks every object of napari, Qt wrappers and numpy included: 200-300 ms
        with every thread paused. Frozen objects are skipped, so later passes only walk what was
        made since. Done when the layers are queued and again once they are made.
        """
        gc.freeze()
        self._frozen = True

    def _launch(self, run: EngineRun) -> None:
        if self._run is not None:
            raise RuntimeError("the engine is already running")
        self.set_config(run.config)
        self.prepare_layers()
        self._run = run
        worker = create_worker(run_engine, run, self.options, self._inbox.append,
                               _worker_class=EngineWorker, _start_thread=False)
        worker.returned.connect(_weakly(self._on_run_returned))
        worker.finished.connect(_weakly(self._on_run_finished))
        self._worker = worker
        what = f"watching {run.raw_folder}" if run.watch else f"retrying {len(run.retries)} unit(s)"
        self._progress = RunProgress(desc=f"OpticStream: {what}", total=0, cancel_callback=self.stop)
        self._progress_stale = True
        worker.start()
        self.runningChanged.emit(True)
        self.message.emit(f"Engine started: {what}.")

    def _on_run_returned(self, report: RunReport) -> None:
        failed = f", {len(report.failed)} failed" if report.failed else ""
        self.message.emit(f"Engine stopped after {report.seconds:.1f} s: {report.completed} completed{failed}.")

    def _on_run_finished(self) -> None:
        self._run, self._worker = None, None
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        if self._closed:
            return
        self._tick()
        following, self._next_run = self._next_run, None
        if following is not None:
            self._launch(following)
        else:
            self.runningChanged.emit(False)

    def _update_progress(self) -> None:
        if self._progress is None or self.config is None:
            return
        level = WORK_UNIT_LEVEL[self.config.modality]
        total = sum(s.total(level) for s in self.summaries.values())
        finished = sum(s.done(level) + s.counts[level][Lifecycle.FAILED] for s in self.summaries.values())
        if total != self._progress.total:
            self._progress.total = total
        if finished != self._progress.n:
            self._progress.update(finished - self._progress.n)

    def receive(self, message: EngineMessage) -> None:
        """Take an engine message from any thread; the GUI thread handles it at its next tick."""
        self._inbox.append(message)

    # ------------------------------------------------------------------ layers (GUI thread only)

    def _tick(self) -> None:
        """Handle the engine's messages, add layers within a time budget, refresh what changed.

        napari's progress bar processes events while it updates, which can call this again from
        inside itself; the nested call returns at once.
        """
        if self._ticking:
            return
        self._ticking = True
        try:
            self._tick_once()
        finally:
            self._ticking = False

    def _tick_once(self) -> None:
        while self._inbox:
            self._handle(self._inbox.popleft())
        self._empty_some()
        applied = bool(self._pending)
        if applied:  # one per tick: a new layer costs napari 0.1-0.7 s, new data 20-60 ms
            self._apply(heapq.heappop(self._pending)[-1])
            if not self._pending and self._freeze_due:
                self._freeze_due = False
                self._freeze()
        self._read_regions()
        refreshed = bool(self._dirty)
        for key in self._dirty:
            if self._present(key):
                self._layers[key].refresh(thumbnail=False, extent=False, highlight=False)
        self._dirty.clear()
        now = time.monotonic()
        if self._progress_stale and now >= self._progress_due and not (applied or refreshed):
            # the bar repaints the window from inside its update: not in a tick that already changed layers
            self._progress_stale, self._progress_due = False, now + PROGRESS_INTERVAL
            self._update_progress()

    def _handle(self, message: EngineMessage) -> None:
        slice_id = _layers_slice(message)
        if slice_id is not None:
            self._newest = max(self._newest, slice_id)
            if slice_id != self.shown_slice:
                if self.shown_slice is None or (self._follow_newest and slice_id > self.shown_slice):
                    self._switch(slice_id)
                return
        if isinstance(message, RegionWritten) and isinstance(self.config, PSOCTScanConfig):
            key = (mosaic_position(message.mosaic, self.config.mosaics_per_slice), message.modality)
            if key in self._deferred:
                return  # hidden: its data is read when it is shown
            extent = self._extents.get(key, (0, 0))
            inside = message.region[1] <= extent[-2] and message.region[3] <= extent[-1]
            if self.source_of(key) == message.path and inside:
                if key in self._held and not self._layers[key].visible:
                    self._stale.add(key)
                elif key in self._held:
                    self._regions.setdefault(key, []).append(message.region)
                else:
                    self._dirty.add(key)
            else:
                self.request_layers(message.mosaic.slice)
        elif isinstance(message, MosaicFinalised | VolumesStitched):
            self.request_layers(message.mosaic.slice)
        elif slice_id is not None:  # an LSM strip's MIP or a channel's mosaic was written
            self.request_layers(slice_id)

    def request_layers(self, slice_id: int) -> None:
        """Find the slice's mosaics on disk off the GUI thread, then add or update their layers."""
        if self.config is None or self._closed:
            return
        if slice_id in self._scanning:
            self._rescan.add(slice_id)
            return
        self._scanning.add(slice_id)
        known = {k: v for k, v in self._sources.items() if self._present(k) and k not in self._emptied}
        known.update((spec.key, spec.source) for *_, spec in self._pending)
        known.update((key, spec.source) for key, spec in self._deferred.items())
        hidden = frozenset(key for key in self._layers if self._present(key) and not self._will_show(key))
        job = create_worker(live_slice_layers, self.config, slice_id, known, self.preview_level, hidden,
                            _start_thread=False)
        job.returned.connect(_weakly(self._queue))
        job.finished.connect(_weakly(self._scanned, slice_id))
        self._start_job(job)

    def _scanned(self, slice_id: int) -> None:
        self._scanning.discard(slice_id)
        if slice_id in self._rescan:
            self._rescan.discard(slice_id)
            self.request_layers(slice_id)

    def _present(self, key: LayerKey) -> bool:
        layer = self._layers.get(key)
        return layer is not None and layer in self.viewer.layers

    def _will_show(self, key: LayerKey) -> bool:
        """Whether the role's layer is visible, or will be once the shown slice has data for it."""
        return bool(self._layers[key].visible or self._emptied.get(key, False))

    def _queue(self, found: SliceLayers) -> None:
        """Queue the shown slice's layers, most useful first: new data for existing layers, the
        visible mosaics, the other mosaics, overlays. Roles this slice has no data for are hidden."""
        if found.slice != self.shown_slice or self._closed:
            return
        empty = [key for key, layer in self._layers.items()
                 if key[0] and key not in found.present and key not in self._emptied and self._present(key)]
        for key in sorted(empty, key=lambda k: not self._layers[k].visible):  # the visible ones first
            self._emptied[key] = bool(self._layers[key].visible)
            self._to_empty.append((key, found.slice))
        for spec in found.specs:
            if self._present(spec.key):
                rank = 0
            elif spec.kind == "image":
                rank = 1 if spec.kwargs["visible"] else 2
            else:
                rank = 3
            heapq.heappush(self._pending, (rank, next(self._order), spec))

    def _empty_some(self) -> None:
        """Hide and rename roles the shown slice has no data for, a few per tick: a new slice
        empties twenty layers at once, which napari would otherwise redraw in one 130 ms stall."""
        deadline = time.perf_counter() + EMPTYING_BUDGET_S
        while self._to_empty:
            key, slice_id = self._to_empty.popleft()
            if key not in self._emptied or not self._present(key):
                continue  # its data arrived meanwhile
            layer = self._layers[key]
            self._deferred.pop(key, None)
            _set_visible(layer, False)
            layer.name = f"{layer.name.rsplit(' · slice ', 1)[0]} · none on slice {slice_id}"
            if time.perf_counter() >= deadline:
                break

    def _apply(self, spec: LayerSpec) -> None:
        """Add one layer, or give an existing one the data of the shown slice (or its final mosaic)."""
        if spec.slice not in (0, self.shown_slice):
            return
        data = spec.data  # what the layer shows afterwards: the spec's arrays, or its own refilled
        if self._present(spec.key):
            if spec.source == PLACEHOLDER:
                return
            if not self._will_show(spec.key):
                self._defer(spec)
                return
            if needs_loading(spec):  # shown since it was looked up: its levels are read off the GUI thread
                self._load(spec)
                return
            layer = self._layers[spec.key]
            first_data = self._sources.get(spec.key) == PLACEHOLDER
            refilled = _refill(layer, spec)
            if refilled is not None:
                data = refilled
                layer.refresh(extent=False, highlight=False)
            else:
                # each setter re-slices the layer: transforms first (while the old data is still
                # there), and only what changed, so the new data is sliced once
                _set_if_changed(layer, "scale", spec.kwargs["scale"])
                if spec.kind == "image":
                    _set_if_changed(layer, "translate", spec.kwargs.get("translate", (0.0,) * layer.ndim))
                layer.data = spec.data
            if layer.name != spec.kwargs["name"]:
                layer.name = spec.kwargs["name"]
            if spec.kind == "image":
                if first_data:  # later slices keep the limits the operator may have set
                    layer.contrast_limits = spec.kwargs["contrast_limits"]
            elif spec.kind == "shapes":
                layer.features = spec.kwargs["features"]
            if spec.key in self._emptied:
                _set_visible(layer, self._emptied.pop(spec.key))
        else:
            add = {"image": self.viewer.add_image, "labels": self.viewer.add_labels,
                   "shapes": self.viewer.add_shapes}[spec.kind]
            self._layers[spec.key] = layer = add(spec.data, **spec.kwargs)
            layer.events.visible.connect(_weakly(self._on_visible, spec.key))
        self._sources[spec.key] = spec.source
        self._stale.discard(spec.key)
        if spec.source != PLACEHOLDER and not self._fitted:
            self._fitted = True
            self.viewer.reset_view()  # the placeholders gave napari no extent to fit
        if is_live_preview(spec) and spec.extent is not None:
            self._held[spec.key] = data
            # read once more off the GUI thread: tiles may have landed since the levels were loaded
            self._regions[spec.key] = [_whole(spec.extent)]
        else:
            self._held.pop(spec.key, None)
            self._regions.pop(spec.key, None)
        if spec.extent is not None:
            self._extents[spec.key] = spec.extent

    def _defer(self, spec: LayerSpec) -> None:
        """Keep a hidden layer's new data for when it is shown, under its new name.

        A data swap costs napari 20-60 ms of GUI thread and its window a repaint; at the end of a
        mosaic a dozen roles change source, most of them hidden. Their data stays on disk until shown.
        """
        key = spec.key
        self._deferred[key] = spec
        self._emptied.pop(key, None)
        self._held.pop(key, None)
        self._regions.pop(key, None)
        self._stale.discard(key)
        if spec.extent is not None:
            self._extents[key] = spec.extent
        layer = self._layers[key]
        if layer.name != spec.kwargs["name"]:
            layer.name = spec.kwargs["name"]

    def _on_visible(self, key: LayerKey, _event: Any = None) -> None:
        """A layer was shown: give it the data it missed while hidden."""
        if self._closed or not self._present(key) or not self._layers[key].visible:
            return
        spec = self._deferred.pop(key, None)
        if spec is not None and spec.slice in (0, self.shown_slice):
            self._load(spec)
        elif key in self._stale and key in self._extents:
            self._stale.discard(key)
            self._regions[key] = [_whole(self._extents[key])]

    def _load(self, spec: LayerSpec) -> None:
        """Queue ``spec`` first in line, once its levels are in memory where it is shown from memory."""
        job = create_worker(loaded, spec, _start_thread=False)
        job.returned.connect(_weakly(self._push_first))
        self._start_job(job)

    def _push_first(self, spec: LayerSpec) -> None:
        heapq.heappush(self._pending, (0, next(self._order), spec))

    def _read_regions(self) -> None:
        """Read what the engine wrote into held previews off the GUI thread, one job per layer at a time."""
        for key in [k for k in self._regions if k not in self._reading]:
            regions, source = self._regions.pop(key), self._sources[key]
            self._reading.add(key)
            job = create_worker(read_patches, source, len(self._held[key]), regions, _start_thread=False)
            job.returned.connect(_weakly(self._patch, key, source))
            job.finished.connect(_weakly(self._read_done, key))
            self._start_job(job)

    def _patch(self, key: LayerKey, source: str, patches: list[Patch]) -> None:
        held = self._held.get(key)
        if held is None or self.source_of(key) != source:
            return  # the layer moved on to another slice or to its final mosaic meanwhile
        for patch in patches:
            held[patch.index][patch.box] = patch.data
        self._dirty.add(key)

    def _read_done(self, key: LayerKey) -> None:
        self._reading.discard(key)

    def show_slice(self, slice_id: int) -> None:
        """Show ``slice_id`` in the layers; picking the newest slice goes back to following new slices."""
        self._follow_newest = slice_id >= max(self._newest, *self.summaries, slice_id)
        self._switch(slice_id)

    def _switch(self, slice_id: int) -> None:
        self._newest = max(self._newest, slice_id)
        if slice_id != self.shown_slice:
            self.shown_slice = slice_id
            for key, _ in self._to_empty:  # never hidden: the new slice's scan decides about them
                self._emptied.pop(key, None)
            self._to_empty.clear()
            for key in [k for k, spec in self._deferred.items() if spec.slice not in (0, slice_id)]:
                del self._deferred[key]
                if self._sources.get(key) != PLACEHOLDER:
                    self._sources[key] = UNKNOWN  # renamed for the dropped data: the next scan names it again
            self._pending = [item for item in self._pending if item[-1].slice in (0, slice_id)]
            heapq.heapify(self._pending)
        self.request_layers(slice_id)

    def source_of(self, key: LayerKey) -> str | None:
        """The store or file a layer shows now (of the shown slice)."""
        return self._sources.get(key) if self._present(key) else None

    @property
    def layers(self) -> dict[LayerKey, Layer]:
        """The layers this link made that are still in the viewer, by role: ``(mosaic position, what)``."""
        return {k: v for k, v in self._layers.items() if self._present(k)}

    # ------------------------------------------------------------------ jobs and teardown

    def _start_job(self, job: FunctionWorker) -> None:
        self._jobs.add(job)
        job.finished.connect(_weakly(self._forget_job, job))
        job.start()

    def _forget_job(self, job: FunctionWorker) -> None:
        self._jobs.discard(job)

    @property
    def making_layers(self) -> bool:
        """Whether roles are still queued to be made (see :meth:`prepare_layers`)."""
        return any(spec.source == PLACEHOLDER for *_, spec in self._pending)

    @property
    def busy(self) -> bool:
        """Whether background lookups are still in flight (tests wait on this)."""
        return bool(self._jobs or self._inbox or self._pending or self._dirty or self._regions or self._to_empty)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the engine (waiting for the work in flight), the state follower and the timer."""
        if self._closed:
            return
        self._closed = True
        self._timer.stop()
        self._next_run = None
        run = self._run
        if run is not None:
            run.request_stop()
            if not run.done.wait(timeout):
                log.warning("the engine did not stop within %s s", timeout)
        if self._follower is not None:
            self._follower.stop()
            self._follower = None
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        if self._frozen:
            gc.unfreeze()  # the viewer and its layers can be collected once napari lets them go
        self._layers.clear()
        self._held.clear()
        self._regions.clear()
        self._deferred.clear()
        self._stale.clear()
        self._inbox.clear()
        self._pending.clear()


def _refill(layer: Layer, spec: LayerSpec) -> list[np.ndarray] | None:
    """The layer's own levels overwritten with the spec's, where both are in memory with the same
    shapes, types and placement; None where napari must be given the new data.

    napari's data setter costs 30-70 ms of GUI thread; a slice's next mosaic, or the final
    mosaic replacing its preview, usually has the shape of what is shown, and a copy and a
    refresh take a few ms.
    """
    if spec.kind != "image" or not layer.multiscale:
        return None
    shown, new = list(layer.data), spec.data
    if len(shown) != len(new) or not all(
        isinstance(a, np.ndarray) and a.flags.writeable and isinstance(b, np.ndarray)
        and a.shape == b.shape and a.dtype == b.dtype for a, b in zip(shown, new, strict=True)
    ):
        return None
    translate = spec.kwargs.get("translate", (0.0,) * layer.ndim)
    if not (np.allclose(layer.scale, spec.kwargs["scale"]) and np.allclose(layer.translate, translate)):
        return None
    for a, b in zip(shown, new, strict=True):
        np.copyto(a, b)
    return shown


def _whole(extent: tuple[int, ...]) -> Region:
    """The level-0 region of a whole mosaic of ``extent``."""
    return (0, extent[-2], 0, extent[-1])


def _set_if_changed(layer: Layer, name: str, value: Any) -> None:
    if not np.allclose(getattr(layer, name), value):
        setattr(layer, name, value)


def _layers_slice(message: EngineMessage) -> int | None:
    """The slice whose layers a message brings new data for, if any."""
    if isinstance(message, RegionWritten | MosaicFinalised | VolumesStitched):
        return message.mosaic.slice
    if isinstance(message, ChannelStitched):
        return message.channel.slice
    if isinstance(message, UnitCompleted) and isinstance(message.ident, LSMStripId):
        return message.ident.slice
    return None


def _set_visible(layer: Layer, visible: bool) -> None:
    """napari refreshes and redraws on every ``visible`` assignment, even one that changes nothing."""
    if layer.visible != visible:
        layer.visible = visible


def _weakly(method: Callable[..., Any], *args: Any) -> Callable[..., None]:
    """A slot calling ``method(*args, *signal_args)`` while its object lives, without keeping it alive.

    Workers can outlive the link (napari keeps finished workers in its task list while the
    window lives); their connections must not pin the link, or the viewer behind it.
    """
    ref = weakref.WeakMethod(method)

    def call(*signal_args: Any) -> None:
        bound = ref()
        if bound is not None:
            bound(*args, *signal_args)

    return call


def _close_if_alive(ref: weakref.ref[ViewerLink]) -> None:
    link = ref()
    if link is not None:
        link.close()
