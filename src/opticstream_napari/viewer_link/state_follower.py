"""The project's state, followed off the GUI thread: per-slice summaries, failures, what finished."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opticstream_napari.config import PSOCTScanConfig
from opticstream_napari.identity import Identity, LSMSliceId, PSOCTMosaicId, PSOCTSliceId
from opticstream_napari.layout import mosaic_role
from opticstream_napari.state.events import parse_event_name
from opticstream_napari.state.feed import ChangeFeed
from opticstream_napari.state.hierarchy import ProjectKey
from opticstream_napari.state.lifecycle import Lifecycle
from opticstream_napari.state.readiness import readiness
from opticstream_napari.state.service import StateService
from opticstream_napari.state.summary import SliceSummary, summarize
from opticstream_napari.viewer_link.layer_specs import ScanConfigModel

if TYPE_CHECKING:
    from opticstream_napari.state.eventlog import EventRecord

log = logging.getLogger(__name__)

STATE_INTERVAL = 0.1  # the state follower sends summaries at most this often (seconds)


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


class StateFollower:
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
