"""The lifecycle every node shares; kept free of SQL so event naming can use it anywhere."""

from __future__ import annotations

from enum import StrEnum


class Lifecycle(StrEnum):
    """Where a node stands; ``skipped`` is an operator's explicit decision to move on without it."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"


DONE_STATES = frozenset({Lifecycle.COMPLETED, Lifecycle.SKIPPED})
