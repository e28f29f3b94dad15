"""A node opened for update: lifecycle transitions and milestone flags, each logged as an event.

The handle only exists inside :meth:`StateService.update`, whose transaction holds the row's
lock; the events it queues are written in that same transaction, so the log never disagrees
with the rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opticstream_napari.identity import Identity
from opticstream_napari.state.events import Event
from opticstream_napari.state.hierarchy import Level
from opticstream_napari.state.lifecycle import Lifecycle
from opticstream_napari.state.milestones import reset_closure
from opticstream_napari.state.models import NodeRow, utcnow
from opticstream_napari.state.views import NodeView, view_of

Extra = Mapping[str, Any] | None


class NodeHandle:
    """Mutable access to one locked node; every change stamps ``updated_at`` and queues an event."""

    def __init__(self, level: Level, ident: Identity, row: NodeRow, events: list[Event]) -> None:
        self.level = level
        self.ident = ident
        self._row = row
        self._events = events

    def __repr__(self) -> str:
        return f"NodeHandle({self.ident}, {self._row.state})"

    @property
    def state(self) -> Lifecycle:
        return Lifecycle(self._row.state)

    @property
    def attempts(self) -> int:
        return self._row.attempts

    @property
    def claimed_by(self) -> str | None:
        return getattr(self._row, "claimed_by", None)

    def view(self) -> NodeView:
        return view_of(self.level, self._row)

    def flag(self, name: str) -> bool:
        self._check_flag(name)
        return bool(getattr(self._row, name))

    # ------------------------------------------------------------------ lifecycle

    def mark_started(self, extra: Extra = None) -> None:
        """Running now; counts an attempt and forgets the previous outcome."""
        row = self._row
        row.started_at = utcnow()
        row.finished_at = None
        row.attempts += 1
        row.last_error = None
        self._transition(Lifecycle.RUNNING, extra)

    def mark_completed(self, extra: Extra = None) -> None:
        self._row.finished_at = utcnow()
        self._release_claim()
        self._transition(Lifecycle.COMPLETED, extra)

    def mark_failed(self, error: str, extra: Extra = None) -> None:
        """Failed with a reason; the finish time is set, as in the original, but readiness
        treats the node as blocking until it is retried or skipped."""
        self._row.finished_at = utcnow()
        self._row.last_error = error
        self._release_claim()
        self._transition(Lifecycle.FAILED, {"error": error, **(extra or {})})

    def mark_skipped(self, reason: str | None = None, extra: Extra = None) -> None:
        """An operator's decision to move on without this unit; readiness counts it as done."""
        self._row.finished_at = utcnow()
        self._release_claim()
        self._transition(Lifecycle.SKIPPED, {"reason": reason, **(extra or {})})

    def mark_pending(self, extra: Extra = None) -> None:
        """Back to the queue (a retry or a reset): times and claim cleared, attempts kept."""
        self._row.started_at = None
        self._row.finished_at = None
        self._release_claim()
        self._transition(Lifecycle.PENDING, extra)

    def set_state(self, state: Lifecycle, message: str | None = None) -> None:
        """Dispatch to the transition for ``state``; ``message`` is the error or skip reason."""
        if state is Lifecycle.FAILED:
            self.mark_failed(message or "marked failed")
        elif state is Lifecycle.SKIPPED:
            self.mark_skipped(message)
        elif state is Lifecycle.RUNNING:
            self.mark_started()
        elif state is Lifecycle.COMPLETED:
            self.mark_completed()
        else:
            self.mark_pending()

    # ------------------------------------------------------------------ milestones

    def set_flag(self, name: str, value: bool = True, extra: Extra = None) -> None:
        """Raise a milestone (announced with its canonical event) or reset it with dependants."""
        self._check_flag(name)
        if not value:
            self.reset_flag(name)
            return
        if getattr(self._row, name):
            return
        setattr(self._row, name, True)
        self._touch()
        self._events.append(Event.milestone(self.ident, name, extra))

    def reset_flag(self, name: str) -> tuple[str, ...]:
        """Clear the flag and every flag derived from it; returns those that were set."""
        self._check_flag(name)
        cleared = tuple(
            f for f in reset_closure(self.level.modality, self.level.name, name)
            if getattr(self._row, f)
        )
        for f in cleared:
            setattr(self._row, f, False)
        if cleared:
            self._touch()
            self._events.append(Event.of(self.ident, "reset", {"flags": list(cleared)}))
        return cleared

    def record_milestone_failure(self, name: str, error: str) -> None:
        """Keep a failed milestone's reason visible without changing the lifecycle."""
        self._check_flag(name)
        self._row.last_error = f"{name}: {error}"
        self._touch()
        payload = {"flag": name, "error": error}
        self._events.append(Event.of(self.ident, "milestone_failed", payload))

    def announce(self, state: str, extra: Extra = None) -> Event:
        """Log a signal about this node (``ready`` …) in the same transaction as the update."""
        event = Event.of(self.ident, state, extra)
        self._events.append(event)
        return event

    # ------------------------------------------------------------------ claims

    def take_claim(self, worker: str) -> None:
        """Start this unit on behalf of ``worker`` (see :mod:`claims`)."""
        self.mark_started({"worker": worker})
        self._row.claimed_by = worker  # type: ignore[union-attr]
        self._row.heartbeat_at = self._row.updated_at  # type: ignore[union-attr]

    def _release_claim(self) -> None:
        if self.level.claimable:
            self._row.claimed_by = None  # type: ignore[union-attr]
            self._row.heartbeat_at = None  # type: ignore[union-attr]

    # ------------------------------------------------------------------ internals

    def _transition(self, state: Lifecycle, extra: Extra) -> None:
        self._row.state = state.value
        self._touch()
        payload = {k: v for k, v in (extra or {}).items() if v is not None}
        self._events.append(Event.of(self.ident, state.value, payload))

    def _touch(self) -> None:
        self._row.updated_at = utcnow()

    def _check_flag(self, name: str) -> None:
        if name not in self.level.flags:
            known = ", ".join(self.level.flags) or "none"
            where = f"{self.level.modality} {self.level.name}"
            raise ValueError(f"{where} has no milestone {name!r} (known: {known})")
