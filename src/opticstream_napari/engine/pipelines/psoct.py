"""PS-OCT on the coordinator: tile → batch → mosaic → slice, decided through the state service.

After each tile, the pipeline checks its batch's readiness with explicit identities; a ready
batch is completed (``batch.processed``), which may make its mosaic ready (``mosaic.ready``).
The mosaic's gate (spec 1.5) starts the final fuse on the executor; when it returns, the
mosaic gets ``enface_stitched``, which may make the slice ready (``slice.ready``, then
completed). Its volumes are stitched next (``volume_stitched``), and then the mosaic is
completed; with volumes off it completes at once. A restart that finds the en-face mosaics
already stitched goes on with the volumes only. A failed tile blocks its mosaic (readiness
names it) while the rest of the acquisition goes on.

Live previews (``live_previews``, on by default): each completed tile queues a live-region job for
its mosaic; at most one runs per mosaic, with every tile that completed meanwhile, so writes
never race.

The first mosaic of an acquisition label to be fused registers its tiles and saves the
label's placement template; another mosaic of that label waits for it instead of computing a
second template. Likewise the first mosaic of a config bucket to stitch its volumes fits the
bucket's focus plane, and the volumes of another mosaic of that bucket wait for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from opticstream_napari.config import PSOCTScanConfig
from opticstream_napari.engine.discover import MosaicRanges, PSOCTDiscovery
from opticstream_napari.engine.jobs import Job, WorkUnit
from opticstream_napari.engine.messages import (
    EngineMessage,
    MosaicFinalised,
    RegionWritten,
    SliceDone,
    UnitFailed,
    UnitStarted,
    VolumesStitched,
)
from opticstream_napari.engine.pipelines.psoct_mosaic import finalise_mosaic, write_live_regions
from opticstream_napari.engine.pipelines.psoct_tile import bucket_of, process_tile
from opticstream_napari.engine.pipelines.psoct_volume import focus_plane_path, stitch_volumes, stitches_volumes
from opticstream_napari.engine.watch import Candidate
from opticstream_napari.identity import (
    Identity,
    PSOCTBatchId,
    PSOCTMosaicId,
    PSOCTSliceId,
    PSOCTTileId,
)
from opticstream_napari.io.placement_template import placement_template_path
from opticstream_napari.layout import mosaic_role
from opticstream_napari.state.errors import NodeNotFound
from opticstream_napari.state.gates import flow_gate
from opticstream_napari.state.hierarchy import ProjectKey
from opticstream_napari.state.lifecycle import DONE_STATES, Lifecycle
from opticstream_napari.state.readiness import readiness
from opticstream_napari.state.service import StateService

log = logging.getLogger(__name__)

Emit = Callable[[EngineMessage], None]
_FLAGS = {"batch": ("enface_processed",), "mosaic": ("enface_stitched", "volume_stitched")}


@dataclass
class _Live:
    """Live-preview bookkeeping of one mosaic: tiles done, tiles not yet drawn, a job in flight."""

    done: set[int] = field(default_factory=set)
    queued: set[int] = field(default_factory=set)
    busy: bool = False
    rebuild: bool = True


class PSOCTPipeline:
    """The PS-OCT steps of one project and raw folder (see the module docstring)."""

    def __init__(
        self,
        config: PSOCTScanConfig,
        raw_folder: Path,
        state: StateService,
        emit: Emit,
        *,
        task_threads: int | None = None,
        mosaic_ranges: MosaicRanges | None = None,
        slice_offset: int = 0,
        incomplete_grace: float = 120.0,
        force: bool = False,
        live_previews: bool = True,
    ) -> None:
        self.project = ProjectKey("psoct", config.project_name)
        self.config = config
        self._data = config.model_dump(mode="json")
        self._discovery = PSOCTDiscovery(config, raw_folder, mosaic_ranges or MosaicRanges(), slice_offset,
                                         incomplete_grace)
        self._state = state
        self._emit = emit
        self._threads = task_threads
        self._force = force
        self._live_previews = live_previews
        self._running: set[PSOCTTileId] = set()
        self._live: dict[PSOCTMosaicId, _Live] = {}
        self._finalising: set[PSOCTMosaicId] = set()
        self._stitched: set[PSOCTMosaicId] = set()
        self._awaiting_template: dict[str, set[PSOCTMosaicId]] = {}
        self._volumes: set[PSOCTMosaicId] = set()
        self._awaiting_focus: dict[str, set[PSOCTMosaicId]] = {}

    def discover(self) -> Mapping[Hashable, Candidate]:
        return self._discovery()

    def unit_job(self, unit: WorkUnit, path: Path) -> Job:
        assert isinstance(unit, PSOCTTileId)
        self._running.add(unit)
        return Job(unit, process_tile, (self._data, unit.to_dict(), str(path), self._threads),
                   partial(self._tile_done, unit), partial(self._tile_failed, unit))

    # ------------------------------------------------------------------ readiness chain

    def _tile_done(self, tile: PSOCTTileId, _result: Any) -> list[Job]:
        """Check the batch unless a sibling is still running here (then it cannot be ready yet)."""
        self._running.discard(tile)
        mosaic = tile.parent.parent
        self._note_live(mosaic, tile.tile)
        jobs: list[Job] = []
        if not any(other.parent == tile.parent for other in self._running) and self._complete_batch(tile.parent):
            jobs = self._check_mosaic(mosaic)
        return self._dispatch_live(mosaic) + jobs

    def _tile_failed(self, tile: PSOCTTileId, _error: str) -> list[Job]:
        self._running.discard(tile)
        return []

    def _complete_batch(self, batch: PSOCTBatchId) -> bool:
        """Complete the batch if every tile is done; True when it is (now or already)."""
        if not readiness(self._state, batch, self.config).ready:
            return False
        with self._state.update(batch) as node:
            if node.state not in DONE_STATES:
                node.mark_completed()
            node.set_flag("enface_processed")
        return True

    def _role(self, mosaic: PSOCTMosaicId) -> str:
        return mosaic_role(mosaic.mosaic, self.config.mosaics_per_slice).acquisition

    def _check_mosaic(self, mosaic: PSOCTMosaicId) -> list[Job]:
        """Start the final fuse of a ready mosaic through its flow gate (once per run)."""
        if mosaic in self._finalising or mosaic in self._stitched:
            return []
        acquisition = self._role(mosaic)
        if any(self._role(m) == acquisition for m in self._finalising) and not placement_template_path(
            self.config.project_base_path, acquisition
        ).is_file():
            self._awaiting_template.setdefault(acquisition, set()).add(mosaic)
            return []
        if not readiness(self._state, mosaic, self.config).ready:
            return []
        with self._state.update(mosaic) as node:
            if node.state in DONE_STATES and not self._force:
                return []
            volumes_only = node.flag("enface_stitched") and not self._force and stitches_volumes(self.config)
            if not volumes_only:
                node.announce("ready")
                for flag in _FLAGS["mosaic"]:
                    node.reset_flag(flag)
            decision = flow_gate(node, force_rerun=self._force)
        if not decision.should_run:
            return []
        if volumes_only:
            self._stitched.add(mosaic)
            return self._check_volumes(mosaic)
        self._finalising.add(mosaic)
        self._emit(UnitStarted(mosaic))
        return [Job(mosaic, finalise_mosaic, (self._data, mosaic.to_dict()),
                    partial(self._mosaic_done, mosaic), partial(self._mosaic_failed, mosaic))]

    def _mosaic_done(self, mosaic: PSOCTMosaicId, result: dict[str, Any]) -> list[Job]:
        volumes = stitches_volumes(self.config)
        with self._state.update(mosaic) as node:
            node.set_flag("enface_stitched", True, {"enface_outputs": result["outputs"],
                                                    "placement": result["placement"]})
            if not volumes:
                node.mark_completed()
        self._finalising.discard(mosaic)
        self._stitched.add(mosaic)
        self._live.pop(mosaic, None)
        self._emit(MosaicFinalised(mosaic, dict(result["outputs"])))
        jobs = self._after_fuse(mosaic, template_made=result["placement"] == "registered")
        if volumes:
            jobs += self._check_volumes(mosaic)
        return jobs + self._check_slice(mosaic.parent)

    def _mosaic_failed(self, mosaic: PSOCTMosaicId, error: str) -> list[Job]:
        with self._state.update(mosaic) as node:
            node.mark_failed(error)
        self._finalising.discard(mosaic)
        self._emit(UnitFailed(mosaic, error))
        return self._after_fuse(mosaic, template_made=False)

    def _after_fuse(self, mosaic: PSOCTMosaicId, *, template_made: bool) -> list[Job]:
        """Mosaics that waited for this one's template go on; live previews of that label move to it."""
        acquisition = self._role(mosaic)
        jobs: list[Job] = []
        for waiting in sorted(self._awaiting_template.pop(acquisition, set())):
            jobs += self._check_mosaic(waiting)
        if template_made:
            for other, live in self._live.items():
                if self._role(other) == acquisition:
                    live.rebuild = True
                    jobs += self._dispatch_live(other)
        return jobs

    # ------------------------------------------------------------------ volumes

    def _check_volumes(self, mosaic: PSOCTMosaicId) -> list[Job]:
        """Stitch the volumes, unless another mosaic of the bucket is fitting its focus plane now."""
        bucket = bucket_of(self.config, mosaic.mosaic)
        if any(bucket_of(self.config, m.mosaic) == bucket for m in self._volumes) and not focus_plane_path(
            self.config, bucket
        ).is_file():
            self._awaiting_focus.setdefault(bucket, set()).add(mosaic)
            return []
        self._volumes.add(mosaic)
        return [Job(mosaic, stitch_volumes, (self._data, mosaic.to_dict(), self._threads),
                    partial(self._volumes_done, mosaic), partial(self._volumes_failed, mosaic))]

    def _volumes_done(self, mosaic: PSOCTMosaicId, result: dict[str, Any]) -> list[Job]:
        with self._state.update(mosaic) as node:
            node.set_flag("volume_stitched", True, {"volume_outputs": result["outputs"], "focus": result["focus"]})
            node.mark_completed()
        self._emit(VolumesStitched(mosaic, dict(result["outputs"])))
        return self._after_volumes(mosaic)

    def _volumes_failed(self, mosaic: PSOCTMosaicId, error: str) -> list[Job]:
        with self._state.update(mosaic) as node:
            node.mark_failed(f"volume stitching: {error}")
        self._emit(UnitFailed(mosaic, error))
        return self._after_volumes(mosaic)

    def _after_volumes(self, mosaic: PSOCTMosaicId) -> list[Job]:
        """Mosaics of the bucket that waited for this one's focus plane go on (they fit it if it failed)."""
        self._volumes.discard(mosaic)
        jobs: list[Job] = []
        for waiting in sorted(self._awaiting_focus.pop(bucket_of(self.config, mosaic.mosaic), set())):
            jobs += self._check_volumes(waiting)
        return jobs

    def _check_slice(self, slice_: PSOCTSliceId) -> list[Job]:
        if not readiness(self._state, slice_, self.config).ready:
            return []
        with self._state.update(slice_) as node:
            if node.state in DONE_STATES:
                return []
            node.announce("ready")
            node.mark_completed()
        self._emit(SliceDone(slice_))
        return []

    # ------------------------------------------------------------------ live previews

    def _note_live(self, mosaic: PSOCTMosaicId, tile: int) -> None:
        """Queue the tile's region of the live previews (idempotent; dispatched separately)."""
        if not self._live_previews or mosaic in self._stitched:
            return
        live = self._live.setdefault(mosaic, _Live())
        live.done.add(tile)
        live.queued.add(tile)

    def _dispatch_live(self, mosaic: PSOCTMosaicId) -> list[Job]:
        live = self._live.get(mosaic)
        if live is None or live.busy or not (live.queued or live.rebuild) or not live.done:
            return []
        tiles, rebuild = sorted(live.queued), live.rebuild
        live.queued.clear()
        live.busy, live.rebuild = True, False
        return [Job(mosaic, write_live_regions, (self._data, mosaic.to_dict(), tiles, sorted(live.done), rebuild),
                    partial(self._live_done, mosaic), partial(self._live_failed, mosaic))]

    def _live_done(self, mosaic: PSOCTMosaicId, regions: list[tuple[str, tuple[int, ...], str]]) -> list[Job]:
        for modality, region, path in regions:
            self._emit(RegionWritten(mosaic, modality, tuple(region), path))  # type: ignore[arg-type]
        live = self._live.get(mosaic)
        if live is None:
            return []
        live.busy = False
        return self._dispatch_live(mosaic)

    def _live_failed(self, mosaic: PSOCTMosaicId, error: str) -> list[Job]:
        log.warning("live preview of %s failed (the final mosaic is unaffected): %s", mosaic, error)
        live = self._live.get(mosaic)
        if live is not None:
            live.busy = False
        return []

    # ------------------------------------------------------------------ restart and retry

    def resume(self) -> list[Job]:
        """Complete what a killed run left: batches and mosaics that became ready, live previews."""
        try:
            tree = self._state.tree(self.project, depth=4)
        except NodeNotFound:
            return []
        jobs: list[Job] = []
        for slice_node in tree.get("slices", []):
            for mosaic_node in slice_node.get("mosaics", []):
                if Lifecycle(mosaic_node["state"]) in DONE_STATES:
                    continue
                mosaic = PSOCTMosaicId.from_dict(mosaic_node["ident"])
                done = set()
                for batch_node in mosaic_node.get("batches", []):
                    tiles = batch_node.get("tiles", [])
                    done |= {t["ident"]["tile"] for t in tiles if t["state"] == Lifecycle.COMPLETED}
                    if Lifecycle(batch_node["state"]) not in DONE_STATES:
                        self._complete_batch(PSOCTBatchId.from_dict(batch_node["ident"]))
                if done and self._live_previews:
                    self._live[mosaic] = _Live(done=done)
                    jobs += self._dispatch_live(mosaic)
                jobs += self._check_mosaic(mosaic)
            if Lifecycle(slice_node["state"]) not in DONE_STATES:
                jobs += self._check_slice(PSOCTSliceId.from_dict(slice_node["ident"]))
        return jobs

    def retry(self, ident: Identity) -> list[WorkUnit]:
        """Back to pending: the tile, every tile of a batch, or a mosaic's failed tiles and its fuse.

        The ancestors go back to pending too (their milestone reset), so the batch, mosaic and
        slice are completed again once the retried work is done.
        """
        if isinstance(ident, PSOCTTileId):
            units, mosaic = [ident], ident.parent.parent
        elif isinstance(ident, PSOCTBatchId):
            units, mosaic = [v.ident for v in self._state.children(ident)], ident.parent
        elif isinstance(ident, PSOCTMosaicId):
            units = [v.ident for batch in self._state.children(ident) for v in self._state.children(batch.ident)
                     if v.state is Lifecycle.FAILED]
            mosaic = ident
        else:
            raise TypeError(f"retry takes a PS-OCT tile, batch or mosaic, found {ident}")
        for unit in units:
            with self._state.update(unit, create=False) as node:
                node.mark_pending({"reason": "retry"})
        for parent in _ancestors(ident):
            self._reopen(parent)
        self._stitched.discard(mosaic)
        return [u for u in units if isinstance(u, PSOCTTileId)]

    def _reopen(self, ident: Identity) -> None:
        with self._state.update(ident, create=False) as node:
            for flag in _FLAGS.get(ident.level, ()):
                node.reset_flag(flag)
            if node.state is not Lifecycle.PENDING:
                node.mark_pending({"reason": "retry"})


def _ancestors(ident: Identity) -> list[Identity]:
    """``ident`` itself unless it is a tile (a unit), then every level above it."""
    chain: list[Identity] = [] if isinstance(ident, PSOCTTileId) else [ident]
    node: Any = ident
    while hasattr(node, "parent"):
        node = node.parent
        chain.append(node)
    return chain
