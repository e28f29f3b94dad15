"""LSM on the coordinator: strip → channel → slice, decided through the state service.

A strip completes together with its ``compressed`` milestone (``strip.compressed``). When every
strip 1..``strips_per_slice`` of a channel is compressed, the channel is ready
(``channel.ready``); its gate starts the MIP concatenation, which sets ``mip_stitched``. With
``stitch_volume`` off, ``volume_stitched`` is set with it (spec 1.2 step 6) and the channel
completes; with it on, the channel volumes are stitched next and the channel completes with
``volume_stitched``. A slice completes when all of its channels have.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from opticstream_napari.config import LSMScanConfig
from opticstream_napari.engine.discover import LSMDiscovery
from opticstream_napari.engine.jobs import Job, WorkUnit
from opticstream_napari.engine.messages import (
    ChannelStitched,
    ChannelVolumeStitched,
    EngineMessage,
    SliceDone,
    UnitFailed,
    UnitStarted,
)
from opticstream_napari.engine.pipelines.lsm_work import compress_strip, stitch_channel_mip, stitch_channel_volume
from opticstream_napari.engine.watch import Candidate
from opticstream_napari.identity import Identity, LSMChannelId, LSMSliceId, LSMStripId
from opticstream_napari.state.errors import NodeNotFound
from opticstream_napari.state.gates import flow_gate
from opticstream_napari.state.hierarchy import ProjectKey
from opticstream_napari.state.lifecycle import DONE_STATES, Lifecycle
from opticstream_napari.state.readiness import readiness
from opticstream_napari.state.service import StateService


class LSMPipeline:
    """The LSM steps of one project and raw folder (see the module docstring)."""

    def __init__(
        self,
        config: LSMScanConfig,
        raw_folder: Path,
        state: StateService,
        emit: Callable[[EngineMessage], None],
        *,
        task_threads: int | None = None,
        slice_offset: int = 0,
        force: bool = False,
    ) -> None:
        self.project = ProjectKey("lsm", config.project_name)
        self.config = config
        self._data = config.model_dump(mode="json")
        self._discovery = LSMDiscovery(config, raw_folder, slice_offset)
        self._state = state
        self._emit = emit
        self._force = force
        self._threads = task_threads
        self._stitching: set[LSMChannelId] = set()
        self._stitched: set[LSMChannelId] = set()

    def discover(self) -> Mapping[Hashable, Candidate]:
        return self._discovery()

    def unit_job(self, unit: WorkUnit, path: Path) -> Job:
        assert isinstance(unit, LSMStripId)
        return Job(unit, compress_strip, (self._data, unit.to_dict(), str(path), self._threads),
                   lambda _result: self._check_channel(unit.parent), lambda _error: [], flags=("compressed",))

    def _check_channel(self, channel: LSMChannelId) -> list[Job]:
        if channel in self._stitching or channel in self._stitched:
            return []
        if not readiness(self._state, channel, self.config).ready:
            return []
        with self._state.update(channel) as node:
            if node.state in DONE_STATES and not self._force:
                return []
            node.announce("ready")
            node.reset_flag("mip_stitched")
            decision = flow_gate(node, force_rerun=self._force)
        if not decision.should_run:
            return []
        self._stitching.add(channel)
        self._emit(UnitStarted(channel))
        return [Job(channel, stitch_channel_mip, (self._data, channel.to_dict()),
                    partial(self._channel_done, channel), partial(self._channel_failed, channel))]

    def _channel_done(self, channel: LSMChannelId, result: dict[str, Any]) -> list[Job]:
        outputs = result["outputs"]
        with self._state.update(channel) as node:
            node.set_flag("mip_stitched", True, {"mip_stitched_path": outputs, "mip_count": result["mip_count"]})
            if not self.config.stitch_volume:
                node.set_flag("volume_stitched")
                node.mark_completed()
        self._emit(ChannelStitched(channel, dict(outputs)))
        if self.config.stitch_volume:
            return [Job(channel, stitch_channel_volume, (self._data, channel.to_dict(), self._threads),
                        partial(self._volume_done, channel), partial(self._channel_failed, channel))]
        self._channel_completed(channel)
        return []

    def _volume_done(self, channel: LSMChannelId, result: dict[str, Any]) -> list[Job]:
        outputs = result["outputs"]
        with self._state.update(channel) as node:
            node.set_flag("volume_stitched", True, {"volume_stitched_path": outputs})
            node.mark_completed()
        self._emit(ChannelVolumeStitched(channel, dict(outputs)))
        self._channel_completed(channel)
        return []

    def _channel_completed(self, channel: LSMChannelId) -> None:
        self._stitching.discard(channel)
        self._stitched.add(channel)
        self._check_slice(channel.parent)

    def _channel_failed(self, channel: LSMChannelId, error: str) -> list[Job]:
        with self._state.update(channel) as node:
            node.mark_failed(error)
        self._stitching.discard(channel)
        self._emit(UnitFailed(channel, error))
        return []

    def _check_slice(self, slice_: LSMSliceId) -> None:
        channels = self._state.children(slice_)
        if not channels or any(view.state not in DONE_STATES for view in channels):
            return
        with self._state.update(slice_) as node:
            if node.state in DONE_STATES:
                return
            node.mark_completed()
        self._emit(SliceDone(slice_))

    def resume(self) -> list[Job]:
        """Channels that became ready (or were being stitched) when an earlier run stopped."""
        try:
            slices = self._state.children(self.project)
        except NodeNotFound:
            return []
        jobs: list[Job] = []
        for slice_view in slices:
            for channel in self._state.children(slice_view.ident):
                if channel.state not in DONE_STATES:
                    jobs += self._check_channel(channel.ident)  # type: ignore[arg-type]
            if slice_view.state not in DONE_STATES:
                self._check_slice(slice_view.ident)  # type: ignore[arg-type]
        return jobs

    def retry(self, ident: Identity) -> list[WorkUnit]:
        """Back to pending: the strip, or a channel's failed strips and its MIP concatenation."""
        if isinstance(ident, LSMStripId):
            units, channel = [ident], ident.parent
        elif isinstance(ident, LSMChannelId):
            units = [v.ident for v in self._state.children(ident) if v.state is Lifecycle.FAILED]
            channel = ident
        else:
            raise TypeError(f"retry takes an LSM strip or channel, found {ident}")
        for unit in units:
            with self._state.update(unit, create=False) as node:
                node.reset_flag("compressed")
                node.mark_pending({"reason": "retry"})
        for parent in (channel, channel.parent):
            with self._state.update(parent, create=False) as node:
                if parent is channel:
                    node.reset_flag("mip_stitched")
                if node.state is not Lifecycle.PENDING:
                    node.mark_pending({"reason": "retry"})
        self._stitched.discard(channel)
        return [u for u in units if isinstance(u, LSMStripId)]
