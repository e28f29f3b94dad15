"""The contract between the engine's coordinator and a modality's pipeline.

A pipeline knows what a unit of work is (discovery, the task that processes it) and what
follows when one finishes (readiness, stitching). The coordinator (:mod:`engine.runner`) owns
the watcher, the claims, the executor and the listeners. Pipelines never submit work
themselves: they return :class:`Job` objects, and the coordinator submits them and calls back
``on_done`` or ``on_error`` on its own thread, so the state is only ever touched from there.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from opticstream_napari.engine.watch import Candidate
from opticstream_napari.identity import Identity, LSMStripId, PSOCTTileId
from opticstream_napari.state.hierarchy import ProjectKey

WorkUnit = PSOCTTileId | LSMStripId


@dataclass(frozen=True, eq=False)
class Job:
    """A module-level function and its picklable arguments, and what to do with the outcome.

    ``on_done(result)`` and ``on_error(message)`` run on the coordinator and return the jobs
    that follow (``on_error`` also runs, its jobs ignored, when a unit's result is dropped
    because its claim was lost). ``ident`` names the node the job works on (for listeners and logs); ``flags``
    are milestones a claimed unit reaches in the same transaction as its completion.
    """

    ident: Identity
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    on_done: Callable[[Any], list[Job]]
    on_error: Callable[[str], list[Job]]
    flags: tuple[str, ...] = ()


class Pipeline(Protocol):
    """One modality's steps: PS-OCT tile → batch → mosaic → slice, LSM strip → channel."""

    project: ProjectKey

    def discover(self) -> Mapping[Hashable, Candidate]:
        """Raw units on disk now, keyed by their work-unit identity."""
        ...

    def unit_job(self, unit: WorkUnit, path: Path) -> Job:
        """The job that processes one claimed unit from its raw file or folder."""
        ...

    def resume(self) -> list[Job]:
        """At start: finish what an earlier run left (ready parents, live previews)."""
        ...

    def retry(self, ident: Identity) -> list[WorkUnit]:
        """Return ``ident`` (a unit or a parent) to pending so it runs again; the units to run."""
        ...
