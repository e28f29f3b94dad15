"""The mediator between the engine, the state database and the napari viewer.

The dock widget never runs the engine, queries the database or touches a layer itself; it calls
:class:`ViewerLink`, which

- runs the engine in a napari worker thread, with a bar in the activity dock whose cancel (like
  the widget's Stop) sets the engine's stop event;
- follows the project's change feed on a thread of its own and hands per-slice summaries to the
  GUI thread at most ten times a second;
- turns engine messages (a region written, a mosaic finalised) into multiscale layers, which it
  refreshes at most ten times a second.

This is the only module that creates or changes layers, and it does so on the GUI thread only:
background threads pass small messages (identities, regions, summaries, paths, lazy arrays).
"""

from __future__ import annotations

import atexit
import contextlib
import heapq
import importlib
import itertools
import logging
import os
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dask.array as da
import numpy as np
import pint
import yaml
import zarr
from napari.qt.threading import FunctionWorker, create_worker
from napari.utils import cancelable_progress
from napari.utils.notifications import show_info, show_warning
from qtpy.QtCore import QObject, QTimer, Signal

from opticstream_napari import naming
from opticstream_napari.config import LSMScanConfig, PSOCTScanConfig
from opticstream_napari.engine.executors import LocalExecutor
from opticstream_napari.engine.messages import EngineMessage, MosaicFinalised, RegionWritten
from opticstream_napari.engine.pipelines.psoct_mosaic import live_path, stitched_folder
from opticstream_napari.engine.runner import Engine, RunReport
from opticstream_napari.identity import Identity, LSMSliceId, PSOCTMosaicId, PSOCTSliceId
from opticstream_napari.io.nifti import read_enface_nifti
from opticstream_napari.io.ome_zarr import is_complete
from opticstream_napari.layout import mosaic_role, mosaics_of_slice
from opticstream_napari.state.events import parse_event_name
from opticstream_napari.state.feed import ChangeFeed
from opticstream_napari.state.hierarchy import WORK_UNIT_LEVEL, ProjectKey
from opticstream_napari.state.lifecycle import Lifecycle
from opticstream_napari.state.readiness import readiness
from opticstream_napari.state.service import StateService
from opticstream_napari.state.summary import SliceSummary, summarize
from opticstream_napari.state.urls import redact_url

if TYPE_CHECKING:
    import napari
    from napari.layers import Layer

    from opticstream_napari.state.eventlog import EventRecord

__all__ = [
    "DISPLAY",
    "EngineOptions",
    "Failure",
    "Identity",
    "LayerSpec",
    "Lifecycle",
    "ScanConfigModel",
    "SliceLayers",
    "SliceSummary",
    "StateUpdate",
    "ViewerLink",
    "expected_counts",
    "redact_url",
    "slice_failures",
    "slice_layer_specs",
]

log = logging.getLogger(__name__)

ScanConfigModel = LSMScanConfig | PSOCTScanConfig
LayerKey = tuple[int, str]  # (position of the mosaic in its slice, what); position 0: project-wide
TICK_MS = 100  # the GUI thread drains engine messages and refreshes layers at most this often
APPLY_BUDGET = 0.03  # seconds of layer updates per tick (at least one), so a new slice never freezes the GUI
STATE_INTERVAL = 0.1  # the state follower sends summaries at most this often (seconds)
PROGRESS_INTERVAL = 1.0  # napari's progress bar processes all pending events on each update: update it rarely
NOTIFY_AT_ONCE = 3  # more failures than this in one update become one notification
UNITS = ("µm", "µm")
# napari imports these on the GUI thread when it makes its first labels layer (seconds without a
# bytecode cache); the link imports them beforehand, on a worker thread.
OVERLAY_IMPORTS = ("pandas", "scipy.linalg", "skimage")


# --------------------------------------------------------------------------- what layers look like


@dataclass(frozen=True, slots=True)
class Display:
    """How one en-face modality is shown: fixed limits, so a growing mosaic never flickers."""

    label: str
    colormap: str
    limits: tuple[float, float]
    visible: bool = False


DISPLAY: dict[str, Display] = {  # units: AIP and MIP in dB, RET and ORI in degrees, BIREF Δn, surface in samples
    "aip": Display("AIP", "gray", (40.0, 90.0), visible=True),
    "mip": Display("MIP", "gray", (40.0, 90.0)),
    "ret": Display("RET", "magma", (0.0, 30.0)),
    "ori": Display("ORI", "twilight_shifted", (-90.0, 90.0)),
    "biref": Display("BIREF", "viridis", (0.0, 1e-3)),
    "surf": Display("surface", "viridis", (0.0, 60.0)),
}


@dataclass(frozen=True, slots=True)
class LayerSpec:
    """A layer to add, or new data for one: built off the GUI thread, applied on it.

    ``key`` is the layer's role, ``(position of the mosaic in its slice, what)``, or ``(0,
    what)`` for project-wide layers: one layer per role whatever the slice, so a long
    acquisition never piles up layers. ``source`` is the file the data came from.
    """

    key: LayerKey
    slice: int
    source: str
    kind: str
    data: Any
    kwargs: dict[str, Any]
    extent: tuple[int, ...] | None = None  # level-0 shape of a pyramid, whatever level the data starts at


@dataclass(frozen=True, slots=True)
class SliceLayers:
    """What a slice has on disk: specs for layers that are new or changed, and every role with data."""

    slice: int
    specs: list[LayerSpec]
    present: frozenset[LayerKey]


_STACKING = {"image": 0, "labels": 1, "shapes": 2}  # overlays land on top of the mosaics


def layer_title(acquisition: str, what: str) -> str:
    """A role's name, what first so it survives the layer list's truncation: ``AIP · normal``."""
    return f"{what} · {acquisition}"


def _image_spec(key: LayerKey, slice_id: int, name: str, path: Path, first_level: int) -> LayerSpec:
    """Every pyramid level from ``first_level`` down, lazily, in µm; no data is read here."""
    group = zarr.open_group(str(path), mode="r")
    datasets = group.attrs["ome"]["multiscales"][0]["datasets"]
    first = min(first_level, len(datasets) - 1)
    levels = [da.from_zarr(group[d["path"]]) for d in datasets[first:]]
    transforms = {t["type"]: t for t in datasets[first]["coordinateTransformations"]}
    scale = transforms["scale"]["scale"]
    translate = transforms.get("translation", {"translation": [0.0] * len(scale)})["translation"]
    display = DISPLAY.get(key[1], Display(key[1], "gray", (0.0, 1.0)))
    kwargs = {
        "name": name, "multiscale": True, "cache": False, "scale": scale, "translate": translate,
        "units": UNITS, "axis_labels": ("y", "x"), "contrast_limits": display.limits,
        "colormap": display.colormap, "visible": display.visible,
    }
    return LayerSpec(key, slice_id, str(path), "image", levels, kwargs, tuple(group[datasets[0]["path"]].shape))


def _mask_spec(key: LayerKey, slice_id: int, name: str, path: Path) -> LayerSpec:
    mask, pixel = read_enface_nifti(path)
    kwargs = {"name": name, "scale": pixel, "units": UNITS, "axis_labels": ("y", "x"), "opacity": 0.4,
              "visible": False}
    return LayerSpec(key, slice_id, str(path), "labels", (mask > 0).astype(np.uint8), kwargs)


def _tiles_spec(key: LayerKey, slice_id: int, name: str, path: Path) -> LayerSpec:
    """Tile footprints where the final fuse put them, numbered in acquisition order."""
    coords = yaml.safe_load(path.read_text(encoding="utf-8"))
    height, width = coords["tile_shape"]
    rectangles, numbers = [], []
    for tile in coords["tiles"]:
        y, x = (v - 0.5 for v in tile["offset"])
        rectangles.append(np.array([[y, x], [y, x + width], [y + height, x + width], [y + height, x]]))
        numbers.append(tile["tile"])
    kwargs = {
        "name": name, "shape_type": "rectangle", "scale": coords["pixel_size_um"], "units": UNITS,
        "axis_labels": ("y", "x"), "edge_color": "cyan", "face_color": "transparent", "edge_width": 0.5,
        "features": {"tile": numbers}, "visible": False, "text": {"string": "{tile}", "color": "cyan", "size": 9},
    }
    return LayerSpec(key, slice_id, str(path), "shapes", rectangles, kwargs)


def _focus_spec(config: PSOCTScanConfig, bucket: str) -> LayerSpec | None:
    path = config.project_base_path / naming.focus_plane_name(bucket)
    if not path.is_file():
        return None
    plane, pixel = read_enface_nifti(path)
    limits = (float(np.nanmin(plane)), float(np.nanmax(plane)) + 1e-6)
    kwargs = {"name": f"focus plane · {bucket}", "scale": pixel, "units": UNITS, "axis_labels": ("y", "x"),
              "colormap": "viridis", "contrast_limits": limits, "visible": False}
    return LayerSpec((0, f"focus-{bucket}"), 0, str(path), "image", plane.astype(np.float32), kwargs)


def import_overlay_dependencies() -> None:
    for name in OVERLAY_IMPORTS:
        importlib.import_module(name)


def mosaic_position(mosaic: PSOCTMosaicId, mosaics_per_slice: int) -> int:
    return mosaic_role(mosaic.mosaic, mosaics_per_slice).position


def _add_spec(specs: list[LayerSpec], build: Callable[..., LayerSpec], *args: Any) -> None:
    """Build one spec; a store the engine is recreating at this moment is left for the next scan."""
    try:
        specs.append(build(*args))
    except (OSError, KeyError, ValueError, yaml.YAMLError) as error:
        log.debug("%s is not readable yet: %s", args[3], error)


def slice_layer_specs(
    config: ScanConfigModel, slice_id: int, known: dict[LayerKey, str], preview_level: int = 0
) -> SliceLayers:
    """The slice's layers on disk now; specs only for those whose source differs from ``known``.

    Each en-face modality of each mosaic comes from its final store once that is complete, else
    from its live preview (loaded from ``preview_level`` down); the mask and the tile outlines
    come with the final mosaic; the focus plane of the mosaic's bucket when one was saved.
    Runs off the GUI thread: it reads metadata and small files only.
    """
    if not isinstance(config, PSOCTScanConfig):
        return SliceLayers(slice_id, [], frozenset())
    specs: list[LayerSpec] = []
    present: set[LayerKey] = set()
    folder = stitched_folder(config, slice_id)
    for mosaic in mosaics_of_slice(slice_id, config.mosaics_per_slice):
        role = mosaic_role(mosaic, config.mosaics_per_slice)
        ident = PSOCTMosaicId(config.project_name, slice_id, mosaic)
        for modality in (m.value for m in config.enface_modalities):
            key = (role.position, modality)
            final = folder / naming.mosaic_zarr_name(mosaic, modality)
            live = live_path(config, ident, modality)
            if is_complete(final):
                path, level = final, 0
            elif (live / "zarr.json").is_file():
                path, level = live, preview_level
            else:
                continue
            present.add(key)
            if known.get(key) != str(path):
                label = DISPLAY[modality].label if modality in DISPLAY else modality
                name = f"{layer_title(role.acquisition, label)} · slice {slice_id}"
                _add_spec(specs, _image_spec, key, slice_id, name, path, level)
        extras = (("mask", folder / naming.mosaic_mask_name(mosaic), _mask_spec),
                  ("tiles", folder / naming.mosaic_tile_coords_name(mosaic), _tiles_spec))
        for what, path, build in extras:
            key = (role.position, what)
            if path.is_file():
                present.add(key)
                if known.get(key) != str(path):
                    name = f"{layer_title(role.acquisition, what)} · slice {slice_id}"
                    _add_spec(specs, build, key, slice_id, name, path)
        if (0, f"focus-{role.bucket}") not in known and (focus := _focus_spec(config, role.bucket)) is not None:
            specs.append(focus)
    return SliceLayers(slice_id, sorted(specs, key=lambda spec: _STACKING[spec.kind]), frozenset(present))


# --------------------------------------------------------------------------- the state, off the GUI thread


@dataclass(frozen=True, slots=True)
class Failure:
    """A failed unit (tile, batch, mosaic, strip) and the error it failed with."""

    ident: Identity
    error: str


@dataclass(frozen=True, slots=True)
class StateUpdate:
    """Fresh summaries of the ``touched`` slices (``None``: every slice) and what is worth a notification."""

    summaries: dict[int, SliceSummary]
    touched: frozenset[int] | None = None
    failures: tuple[Failure, ...] = ()
    slices_done: tuple[int, ...] = ()
    mosaics_done: tuple[PSOCTMosaicId, ...] = ()


def expected_counts(config: ScanConfigModel) -> dict[str, int]:
    """Units a complete slice has at each level, from the scan config (PS-OCT; light-sheet channels vary)."""
    if not isinstance(config, PSOCTScanConfig):
        return {}
    roles = [mosaic_role(m, config.mosaics_per_slice) for m in range(1, config.mosaics_per_slice + 1)]
    columns = sum(config.acquisition.grid_size_x(role.bucket) for role in roles)
    return {"mosaic": len(roles), "batch": columns, "tile": columns * config.acquisition.grid_size_y}


def slice_failures(state: StateService, config: ScanConfigModel, slice_id: int) -> tuple[Failure, ...]:
    """The failed units that block a slice, with their errors (the readiness rules' blockers)."""
    parent: Identity = (PSOCTSliceId if isinstance(config, PSOCTScanConfig) else LSMSliceId)(
        config.project_name, slice_id)
    checks = [view.ident for view in state.children(parent)]
    if isinstance(config, PSOCTScanConfig):
        checks.insert(0, parent)
    failures: dict[Identity, Failure] = {}
    for ident in checks:
        for blocker in readiness(state, ident, config).failed:  # type: ignore[arg-type]
            failures.setdefault(blocker.ident, Failure(blocker.ident, blocker.error or "no error recorded"))
    return tuple(failures.values())


def _update_of(state: StateService, project: ProjectKey, records: list[EventRecord]) -> StateUpdate:
    touched, failures, slices_done, mosaics_done = set(), [], [], []
    for record in records:
        ident: Any = record.ident
        touched.add(ident.slice)
        kind = parse_event_name(record.name)
        if kind.state == Lifecycle.FAILED:
            failures.append(Failure(ident, str(record.payload.get("error", ""))))
        elif kind.state == Lifecycle.COMPLETED and kind.level == "slice":
            slices_done.append(ident.slice)
        elif kind.state == Lifecycle.COMPLETED and kind.level == "mosaic":
            mosaics_done.append(ident)
    summaries = summarize(state, project, sorted(touched))
    return StateUpdate(summaries, frozenset(touched), tuple(failures), tuple(slices_done), tuple(mosaics_done))


class _StateFollower:
    """Connects to the project's database on its own thread and reports summaries as events commit.

    The feed opens before the first summary, so no event falls between the two.
    """

    def __init__(self, config: ScanConfigModel, report: Callable[[StateUpdate], None],
                 fail: Callable[[str], None]) -> None:
        self.config = config
        self.project = ProjectKey(config.modality, config.project_name)
        self.state: StateService | None = None
        self._report = report
        self._fail = fail
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="opticstream-state", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.state = StateService.for_config(self.config)
        except Exception as error:
            log.exception("cannot open the state database")
            self._fail(str(error))
            return
        try:
            with ChangeFeed(self.state, project=self.project, poll_interval=STATE_INTERVAL) as feed:
                self._report(StateUpdate(summarize(self.state, self.project)))
                while not self._stop.is_set():
                    self._follow(feed)
        finally:
            self.state.close()

    def _follow(self, feed: ChangeFeed) -> None:
        assert self.state is not None
        try:
            records = feed.poll(STATE_INTERVAL)
            if records:
                self._report(_update_of(self.state, self.project, records))
        except Exception as error:
            log.exception("reading the state failed")
            self._fail(str(error))
            self._stop.wait(2.0)
            return
        self._stop.wait(STATE_INTERVAL)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)


# --------------------------------------------------------------------------- the engine, off the GUI thread


@dataclass(frozen=True, slots=True)
class EngineOptions:
    """How the GUI runs the engine: a short poll keeps Stop prompt, a lower priority keeps the GUI fluid."""

    stability_seconds: float = 15.0
    poll_interval: float = 0.5
    incomplete_grace: float = 120.0
    workers: int | None = None
    nice: int = 10  # the engine's threads yield the CPU to the GUI thread on a busy machine


@dataclass(slots=True)
class _Run:
    """One engine run as both threads see it: what to do, and the events that end it."""

    config: ScanConfigModel
    raw_folder: Path | None
    watch: bool
    force: bool = False
    retries: tuple[Identity, ...] = ()
    stop: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    engine: Engine | None = None

    def request_stop(self) -> None:
        """Set the stop event and wake the engine's loop, so it does not sleep out its poll interval."""
        self.stop.set()
        if self.engine is not None:
            self.engine.stop()


def _run_engine(run: _Run, options: EngineOptions, listener: Callable[[EngineMessage], None]) -> RunReport:
    """Retry what was asked, then watch until stopped; executor and connections close on the way out."""
    report = RunReport()
    before = _lower_priority(options.nice)
    try:
        state = StateService.for_config(run.config)
        executor = LocalExecutor(options.workers)
        try:
            engine = Engine(run.config, run.raw_folder, state, executor, force=run.force,
                            stability_seconds=options.stability_seconds, poll_interval=options.poll_interval,
                            incomplete_grace=options.incomplete_grace)
            engine.add_listener(listener)
            run.engine = engine
            for ident in run.retries:
                if not run.stop.is_set():
                    report = engine.retry(ident, run.stop)
            if run.watch and not run.stop.is_set():
                report = engine.run(run.stop)
        finally:
            executor.close()
            state.close()
    finally:
        _lower_priority(before)
        run.done.set()
    return report


def _lower_priority(nice: int) -> int:
    """Set this thread's nice value (Linux keeps one per thread; threads started here inherit it).

    Returns the previous value. Raising the priority back may be refused to an unprivileged
    user; the pool thread then stays low, which only ever runs background work.
    """
    if not hasattr(os, "setpriority"):
        return 0
    thread = threading.get_native_id()
    before = os.getpriority(os.PRIO_PROCESS, thread)
    with contextlib.suppress(PermissionError):
        os.setpriority(os.PRIO_PROCESS, thread, nice)
    return before


class _EngineWorker(FunctionWorker):
    """napari's worker, with ``quit`` (the window's task cancel, closing napari) stopping the engine."""

    def __init__(self, func: Callable[..., Any], run: _Run, *args: Any, **kwargs: Any) -> None:
        super().__init__(func, run, *args, **kwargs)
        self.engine_run = run

    def quit(self) -> None:
        self.engine_run.request_stop()
        super().quit()


class _RunProgress(cancelable_progress):
    """The activity-dock bar of a run; its Cancel button stops the engine at once."""

    def cancel(self) -> None:
        super().cancel()
        if self.cancel_callback is not None:
            self.cancel_callback()


# --------------------------------------------------------------------------- the mediator


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
        self._follower: _StateFollower | None = None
        self._run: _Run | None = None
        self._next_run: _Run | None = None
        self._worker: _EngineWorker | None = None
        self._progress: _RunProgress | None = None
        self._inbox: deque[EngineMessage] = deque()
        self._pending: list[tuple[int, int, LayerSpec]] = []
        self._order = itertools.count()
        self._layers: dict[LayerKey, Layer] = {}
        self._sources: dict[LayerKey, str] = {}
        self._extents: dict[LayerKey, tuple[int, ...]] = {}
        self._emptied: dict[LayerKey, bool] = {}  # roles hidden because the shown slice has no data for them
        self._dirty: set[LayerKey] = set()
        self._jobs: set[FunctionWorker] = set()
        self._scanning: set[int] = set()
        self._rescan: set[int] = set()
        self.shown_slice: int | None = None
        self._newest = 0
        self._follow_newest = True
        self._closed = False
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
        self._follower = _StateFollower(config, self._stateArrived.emit, self._stateFailed.emit)
        if not all(name in sys.modules for name in OVERLAY_IMPORTS):
            threading.Thread(target=import_overlay_dependencies, name="opticstream-imports", daemon=True).start()
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
        self._launch(_Run(self.config, Path(raw_folder), watch=True, force=force))

    def retry(self, ident: Identity) -> None:
        """Run ``ident`` again; a running engine restarts with the retry first and goes on watching."""
        if self.config is None:
            raise RuntimeError("load a scan config before retrying")
        if self._run is None:
            self._launch(_Run(self.config, None, watch=False, retries=(ident,)))
            return
        current = self._next_run or self._run
        retries = current.retries if current is self._next_run else ()
        self._next_run = _Run(self.config, current.raw_folder, current.watch, current.force, (*retries, ident))
        self._run.request_stop()
        self.message.emit(f"Restarting to retry {ident}…")

    def stop(self) -> None:
        """Ask the engine to stop: it ends claiming at once and records the work in flight."""
        self._next_run = None
        if self._run is not None:
            self._run.request_stop()
            self.message.emit("Stopping…")

    def _launch(self, run: _Run) -> None:
        if self._run is not None:
            raise RuntimeError("the engine is already running")
        self.set_config(run.config)
        self._run = run
        worker = create_worker(_run_engine, run, self.options, self._inbox.append,
                               _worker_class=_EngineWorker, _start_thread=False)
        worker.returned.connect(_weakly(self._on_run_returned))
        worker.finished.connect(_weakly(self._on_run_finished))
        self._worker = worker
        what = f"watching {run.raw_folder}" if run.watch else f"retrying {len(run.retries)} unit(s)"
        self._progress = _RunProgress(desc=f"OpticStream: {what}", total=0, cancel_callback=self.stop)
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
        deadline = time.perf_counter() + APPLY_BUDGET
        applied = 0
        while self._pending and time.perf_counter() < deadline:
            if applied and not self._present(self._pending[0][-1].key):
                break  # a new layer costs napari 0.1-0.5 s: never two in one tick, nor after other work
            self._apply(heapq.heappop(self._pending)[-1])
            applied += 1
        for key in self._dirty:
            if self._present(key):
                self._layers[key].refresh(thumbnail=False, extent=False, highlight=False)
        self._dirty.clear()
        now = time.monotonic()
        if self._progress_stale and now >= self._progress_due:
            self._progress_stale, self._progress_due = False, now + PROGRESS_INTERVAL
            self._update_progress()

    def _handle(self, message: EngineMessage) -> None:
        if isinstance(message, RegionWritten | MosaicFinalised):
            slice_id = message.mosaic.slice
            self._newest = max(self._newest, slice_id)
            if slice_id != self.shown_slice:
                if self.shown_slice is None or (self._follow_newest and slice_id > self.shown_slice):
                    self._switch(slice_id)
                return
        if isinstance(message, RegionWritten) and isinstance(self.config, PSOCTScanConfig):
            key = (mosaic_position(message.mosaic, self.config.mosaics_per_slice), message.modality)
            extent = self._extents.get(key, (0, 0))
            inside = message.region[1] <= extent[-2] and message.region[3] <= extent[-1]
            if self.source_of(key) == message.path and inside:
                self._dirty.add(key)
            else:
                self.request_layers(message.mosaic.slice)
        elif isinstance(message, MosaicFinalised):
            self.request_layers(message.mosaic.slice)

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
        job = create_worker(slice_layer_specs, self.config, slice_id, known, self.preview_level, _start_thread=False)
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

    def _queue(self, found: SliceLayers) -> None:
        """Queue the shown slice's layers, most useful first: new data for existing layers, the
        visible mosaics, the other mosaics, overlays. Roles this slice has no data for are hidden."""
        if found.slice != self.shown_slice or self._closed:
            return
        for key, layer in self._layers.items():
            if key[0] and key not in found.present and key not in self._emptied and self._present(key):
                self._emptied[key] = bool(layer.visible)
                layer.visible = False
                layer.name = f"{layer.name.rsplit(' · slice ', 1)[0]} · none on slice {found.slice}"
        for spec in found.specs:
            if self._present(spec.key):
                rank = 0
            elif spec.kind == "image":
                rank = 1 if spec.kwargs["visible"] else 2
            else:
                rank = 3
            heapq.heappush(self._pending, (rank, next(self._order), spec))

    def _apply(self, spec: LayerSpec) -> None:
        """Add one layer, or give an existing one the data of the shown slice (or its final mosaic)."""
        if spec.slice not in (0, self.shown_slice):
            return
        if self._present(spec.key):
            layer = self._layers[spec.key]
            layer.data = spec.data
            layer.name = spec.kwargs["name"]
            if spec.kind == "image":
                layer.scale, layer.translate = spec.kwargs["scale"], spec.kwargs["translate"]
            elif spec.kind == "shapes":
                layer.features = spec.kwargs["features"]
            if spec.key in self._emptied:
                layer.visible = self._emptied.pop(spec.key)
        else:
            add = {"image": self.viewer.add_image, "labels": self.viewer.add_labels,
                   "shapes": self.viewer.add_shapes}[spec.kind]
            self._layers[spec.key] = add(spec.data, **spec.kwargs)
        self._sources[spec.key] = spec.source
        if spec.extent is not None:
            self._extents[spec.key] = spec.extent

    def show_slice(self, slice_id: int) -> None:
        """Show ``slice_id`` in the layers; picking the newest slice goes back to following new slices."""
        self._follow_newest = slice_id >= max(self._newest, *self.summaries, slice_id)
        self._switch(slice_id)

    def _switch(self, slice_id: int) -> None:
        self._newest = max(self._newest, slice_id)
        if slice_id != self.shown_slice:
            self.shown_slice = slice_id
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
    def busy(self) -> bool:
        """Whether background lookups are still in flight (tests wait on this)."""
        return bool(self._jobs or self._inbox or self._pending or self._dirty)

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
        self._layers.clear()
        self._inbox.clear()
        self._pending.clear()


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
