"""Readiness rules of spec 1.4, with failed children blocking instead of counting as done.

A parent is ready when every expected child exists and is done. "Done" is completed (or, for
rules on a flag, that flag set) or explicitly skipped by an operator; a failed child blocks
the parent, and the blocker carries the child's identity and last error until it is retried
or skipped. Each check reads one snapshot, so it never mixes two moments.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlmodel import Session

from opticstream_napari.config import LSMScanConfig, PSOCTScanConfig
from opticstream_napari.identity import (
    Identity,
    LSMChannelId,
    LSMStripId,
    PSOCTBatchId,
    PSOCTMosaicId,
    PSOCTSliceId,
    PSOCTTileId,
)
from opticstream_napari.layout import mosaic_role, mosaics_of_slice, tiles_of_batch
from opticstream_napari.state.hierarchy import (
    ident_of_row,
    level_named,
    level_of,
    primary_key,
    within,
)
from opticstream_napari.state.lifecycle import Lifecycle
from opticstream_napari.state.models import PSOCTBatch, PSOCTTile
from opticstream_napari.state.service import StateService
from opticstream_napari.state.views import NodeView, view_of


@dataclass(frozen=True, slots=True)
class Blocker:
    """One child that keeps its parent from being ready, and why."""

    ident: Identity
    reason: str
    error: str | None = None

    def __str__(self) -> str:
        text = f"{self.ident} {self.reason}"
        return f"{text}: {self.error}" if self.error else text


@dataclass(frozen=True, slots=True)
class Readiness:
    ident: Identity
    blockers: tuple[Blocker, ...]

    @property
    def ready(self) -> bool:
        return not self.blockers

    @property
    def failed(self) -> tuple[Blocker, ...]:
        """The blockers an operator must act on (retry or skip); the rest will resolve."""
        return tuple(b for b in self.blockers if b.reason == "failed")

    def describe(self) -> str:
        if self.ready:
            return f"{self.ident} is ready"
        return f"{self.ident} is blocked by " + "; ".join(str(b) for b in self.blockers)


def _blocker(ident: Identity, view: NodeView | None, flag: str | None) -> Blocker | None:
    if view is None:
        return Blocker(ident, "missing")
    if view.state is Lifecycle.SKIPPED:
        return None
    if view.state is Lifecycle.FAILED:
        return Blocker(ident, "failed", view.last_error)
    if flag is not None:
        return None if view.flags[flag] else Blocker(ident, f"{flag} not set ({view.state})")
    return None if view.state is Lifecycle.COMPLETED else Blocker(ident, view.state.value)


def _check(
    state: StateService,
    parent: Identity,
    expected: Iterable[Identity],
    flag: str | None = None,
    failed_tiles_of: PSOCTMosaicId | None = None,
) -> Readiness:
    expected = list(expected)
    if not expected:
        return Readiness(parent, (Blocker(parent, "has no expected children"),))
    level = level_of(expected[0])
    with state.database.reading() as session:
        rows = session.scalars(select(level.model).where(within(level.model, parent))).all()
        views = {primary_key(v.ident): v for v in (view_of(level, r) for r in rows)}
        blockers = [
            b for ident in expected
            if (b := _blocker(ident, views.get(primary_key(ident)), flag)) is not None
        ]
        if failed_tiles_of is not None:
            blockers += _failed_tiles(session, failed_tiles_of)
    return Readiness(parent, tuple(blockers))


def _failed_tiles(session: Session, mosaic: PSOCTMosaicId) -> list[Blocker]:
    """Failed tiles of the mosaic whose batch was not skipped (a skip covers its tiles)."""
    skipped = set(session.scalars(
        select(PSOCTBatch.batch).where(
            within(PSOCTBatch, mosaic), PSOCTBatch.state == Lifecycle.SKIPPED.value
        )
    ))
    tiles = session.scalars(
        select(PSOCTTile)
        .where(within(PSOCTTile, mosaic), PSOCTTile.state == Lifecycle.FAILED.value)
        .order_by(PSOCTTile.batch, PSOCTTile.tile)
    ).all()
    level = level_named("psoct", "tile")
    return [
        Blocker(ident_of_row(level, tile), "failed", tile.last_error)
        for tile in tiles if tile.batch not in skipped
    ]


def channel_readiness(state: StateService, channel: LSMChannelId, strips: int) -> Readiness:
    """Every strip 1..``strips`` exists and is compressed (and not failed), or was skipped."""
    expected = (LSMStripId(channel.project, channel.slice, channel.channel, i)
                for i in range(1, strips + 1))
    return _check(state, channel, expected, flag="compressed")


def batch_readiness(state: StateService, batch: PSOCTBatchId, tiles: Sequence[int]) -> Readiness:
    """Every tile of the batch completed or skipped (tiles are rows here, unlike the original)."""
    expected = (
        PSOCTTileId(batch.project, batch.slice, batch.mosaic, batch.batch, t) for t in tiles
    )
    return _check(state, batch, expected)


def mosaic_readiness(state: StateService, mosaic: PSOCTMosaicId, batches: int) -> Readiness:
    """Every batch 1..``batches`` completed or skipped, and no failed tile in a kept batch."""
    expected = (PSOCTBatchId(mosaic.project, mosaic.slice, mosaic.mosaic, b)
                for b in range(1, batches + 1))
    return _check(state, mosaic, expected, failed_tiles_of=mosaic)


def slice_readiness(state: StateService, slice_: PSOCTSliceId, mosaics: Sequence[int]) -> Readiness:
    """Every mosaic of the slice has its en-face mosaics stitched (and is not failed) or skipped."""
    expected = (PSOCTMosaicId(slice_.project, slice_.slice, m) for m in mosaics)
    return _check(state, slice_, expected, flag="enface_stitched")


def readiness(
    state: StateService,
    ident: LSMChannelId | PSOCTBatchId | PSOCTMosaicId | PSOCTSliceId,
    config: LSMScanConfig | PSOCTScanConfig,
) -> Readiness:
    """The rule for ``ident``'s level, with the expected children taken from the scan config."""
    if isinstance(ident, LSMChannelId) and isinstance(config, LSMScanConfig):
        return channel_readiness(state, ident, config.strips_per_slice)
    if not isinstance(config, PSOCTScanConfig):
        raise TypeError(f"{ident} needs a PS-OCT scan config, found {type(config).__name__}")
    acquisition = config.acquisition
    if isinstance(ident, PSOCTBatchId):
        return batch_readiness(state, ident, tiles_of_batch(ident.batch, acquisition.grid_size_y))
    if isinstance(ident, PSOCTMosaicId):
        bucket = mosaic_role(ident.mosaic, config.mosaics_per_slice).bucket
        return mosaic_readiness(state, ident, acquisition.grid_size_x(bucket))
    if isinstance(ident, PSOCTSliceId):
        mosaics = mosaics_of_slice(ident.slice, config.mosaics_per_slice)
        return slice_readiness(state, ident, mosaics)
    raise TypeError(f"no readiness rule for {ident!r}")
