"""What the engine tells its listeners: small, frozen messages about identities and regions.

The CLI's progress line and the GUI's mediator subscribe with :meth:`Listeners.add`. Messages
never carry arrays, only identities, level-0 regions and output paths, so a listener can hand
them to another thread (the GUI's) cheaply. Callbacks run on the engine's coordinator thread and
must return quickly; an exception in one is logged and does not stop the engine.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from opticstream_napari.identity import Identity, LSMChannelId, LSMSliceId, PSOCTMosaicId, PSOCTSliceId

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class UnitStarted:
    """A unit of work (tile, strip, mosaic stitch, channel MIP) was handed to the executor."""

    ident: Identity


@dataclass(frozen=True, slots=True)
class UnitCompleted:
    ident: Identity
    seconds: float


@dataclass(frozen=True, slots=True)
class UnitFailed:
    """The unit failed with ``error``; for tiles, its mosaic stays blocked until a retry or skip."""

    ident: Identity
    error: str


@dataclass(frozen=True, slots=True)
class RegionWritten:
    """A level-0 region ``(y0, y1, x0, x1)`` of a live mosaic preview changed (every level updated)."""

    mosaic: PSOCTMosaicId
    modality: str
    region: tuple[int, int, int, int]
    path: str


@dataclass(frozen=True, slots=True)
class MosaicFinalised:
    """The final en-face mosaics of ``mosaic`` are written; ``outputs`` maps modality -> OME-Zarr path."""

    mosaic: PSOCTMosaicId
    outputs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class VolumesStitched:
    """The volume mosaics of ``mosaic`` are written; ``outputs`` maps modality (dBI, R3D, O3D) -> OME-Zarr path."""

    mosaic: PSOCTMosaicId
    outputs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ChannelStitched:
    """The channel MIP mosaics (``ch1``, ``ch2``) of an LSM channel are written."""

    channel: LSMChannelId
    outputs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ChannelVolumeStitched:
    """The channel volumes (``ch1``, ``ch2``) of an LSM channel are written (``stitch_volume`` on)."""

    channel: LSMChannelId
    outputs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SliceDone:
    """Every mosaic (PS-OCT) or channel (LSM) of the slice is done; the slice is completed."""

    slice: PSOCTSliceId | LSMSliceId


EngineMessage = (
    UnitStarted | UnitCompleted | UnitFailed | RegionWritten | MosaicFinalised | VolumesStitched | ChannelStitched
    | ChannelVolumeStitched | SliceDone
)
Listener = Callable[[EngineMessage], None]


class Listeners:
    """A thread-safe set of callbacks; :meth:`emit` calls each in the order they were added."""

    def __init__(self) -> None:
        self._callbacks: list[Listener] = []
        self._lock = threading.Lock()

    def add(self, listener: Listener) -> Callable[[], None]:
        """Subscribe; returns a function that unsubscribes."""
        with self._lock:
            self._callbacks.append(listener)

        def remove() -> None:
            with self._lock:
                if listener in self._callbacks:
                    self._callbacks.remove(listener)

        return remove

    def emit(self, message: EngineMessage) -> None:
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            try:
                callback(message)
            except Exception:  # a broken listener must not stop processing
                log.exception("engine listener %r failed on %s", callback, message)
