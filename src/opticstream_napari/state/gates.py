"""Idempotency gates of spec 1.5: decide, under the node's lock, whether a step runs again.

The flow gate guards a node's lifecycle (a tile's processing, a mosaic's stitching); the
milestone gate guards one flag (a batch's archive, a mosaic's upload). Both decide and record
the start in the same locked transaction, so two workers can never both be told to run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any

from opticstream_napari.identity import Identity
from opticstream_napari.state.lifecycle import Lifecycle
from opticstream_napari.state.node import NodeHandle
from opticstream_napari.state.service import StateService

log = logging.getLogger(__name__)


class GateDecision(StrEnum):
    RUN = "run"                        # new, pending, failed (or running, if not yielding)
    RERUN = "rerun"                    # forced over a completed, running or skipped node
    SKIP_COMPLETED = "skip_completed"  # already completed (or milestone already set)
    SKIP_RUNNING = "skip_running"      # someone else is on it and the caller asked to yield
    SKIP_SKIPPED = "skip_skipped"      # an operator skipped it on purpose

    @property
    def should_run(self) -> bool:
        return self in (GateDecision.RUN, GateDecision.RERUN)


def flow_gate(
    node: NodeHandle, *, force_rerun: bool = False, skip_if_running: bool = False
) -> GateDecision:
    """Decide for a locked node and mark it started when it runs."""
    state = node.state
    if state is Lifecycle.COMPLETED and not force_rerun:
        return GateDecision.SKIP_COMPLETED
    if state is Lifecycle.SKIPPED and not force_rerun:
        return GateDecision.SKIP_SKIPPED
    if state is Lifecycle.RUNNING and skip_if_running and not force_rerun:
        log.warning("%s is already running; skipping this run", node.ident)
        return GateDecision.SKIP_RUNNING
    forced = force_rerun and state in (Lifecycle.COMPLETED, Lifecycle.SKIPPED, Lifecycle.RUNNING)
    node.mark_started({"forced": True} if forced else None)
    return GateDecision.RERUN if forced else GateDecision.RUN


def enter_flow(
    state: StateService,
    ident: Identity,
    *,
    force_rerun: bool = False,
    skip_if_running: bool = False,
) -> GateDecision:
    """The flow gate in its own transaction (a missing node is created, then run)."""
    with state.update(ident) as node:
        return flow_gate(node, force_rerun=force_rerun, skip_if_running=skip_if_running)


def milestone_gate(node: NodeHandle, flag: str, *, force: bool = False) -> GateDecision:
    """Skip a milestone already reached; otherwise reset it and its dependants, then run."""
    if node.flag(flag) and not force:
        return GateDecision.SKIP_COMPLETED
    was_set = bool(node.reset_flag(flag))
    return GateDecision.RERUN if was_set else GateDecision.RUN


def enter_milestone(
    state: StateService, ident: Identity, flag: str, *, force: bool = False
) -> GateDecision:
    with state.update(ident) as node:
        return milestone_gate(node, flag, force=force)


def guarded_milestone(
    state: StateService,
    ident: Identity,
    flag: str,
    work: Callable[[], Mapping[str, Any] | None],
    *,
    force: bool = False,
) -> GateDecision:
    """Gate, run ``work``, then raise the flag and announce it with ``work``'s extra payload.

    A failure of ``work`` is recorded on the node (``milestone_failed`` event, last error)
    and re-raised; the flag stays cleared so the next attempt runs.
    """
    decision = enter_milestone(state, ident, flag, force=force)
    if not decision.should_run:
        return decision
    try:
        extra = work()
    except Exception as error:
        with state.update(ident) as node:
            node.record_milestone_failure(flag, f"{type(error).__name__}: {error}")
        raise
    with state.update(ident) as node:
        node.set_flag(flag, True, extra)
    return decision
