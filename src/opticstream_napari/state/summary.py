"""Per-slice counts of every lifecycle state at every level, in one query.

The GUI's overview table calls this on each change; a UNION ALL of per-level GROUP BYs over
the ``(project, slice, state)`` indexes answers it from the indexes alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, literal, select, union_all

from opticstream_napari.state.hierarchy import ProjectKey, levels_of
from opticstream_napari.state.lifecycle import Lifecycle
from opticstream_napari.state.service import StateService


@dataclass(frozen=True, slots=True)
class SliceSummary:
    """``counts[level][state]`` for one slice; every level and state is present (zeros too)."""

    slice: int
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    def total(self, level: str) -> int:
        return sum(self.counts[level].values())

    def done(self, level: str) -> int:
        return self.counts[level][Lifecycle.COMPLETED] + self.counts[level][Lifecycle.SKIPPED]


def summarize(
    state: StateService, project: ProjectKey, slices: Sequence[int] | None = None
) -> dict[int, SliceSummary]:
    """Summaries of the project's slices (or only ``slices``), keyed by slice number."""
    levels = levels_of(project.modality)
    parts = []
    for level in levels:
        model: Any = level.model
        query = select(
            literal(level.name).label("level"), model.slice, model.state,
            func.count().label("n"),
        ).where(model.project == project.name)
        if slices is not None:
            query = query.where(model.slice.in_(list(slices)))
        parts.append(query.group_by(model.slice, model.state))
    summaries: dict[int, SliceSummary] = {}
    with state.database.peeking() as session:
        for level_name, slice_, state_name, n in session.connection().execute(union_all(*parts)):
            summary = summaries.get(slice_)
            if summary is None:
                summary = summaries[slice_] = SliceSummary(slice_, {
                    lv.name: dict.fromkeys((s.value for s in Lifecycle), 0) for lv in levels
                })
            summary.counts[level_name][state_name] = n
    return dict(sorted(summaries.items()))
