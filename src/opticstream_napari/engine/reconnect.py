"""Riding out a state database that restarts: wait, reconnect, go on, losing nothing.

Every state call of the coordinator goes through :func:`reliably`. A connection error (the
server restarting, a network blip, SQLite busy past its timeout) is retried with exponential
backoff until it succeeds or the engine is asked to stop; the connection pool's pre-ping
replaces dead connections. Work on the executor is not interrupted: its results wait in the
coordinator's queue until the database is back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.exc import InterfaceError, OperationalError

from opticstream_napari.state.errors import DatabaseUnreachable

log = logging.getLogger(__name__)
T = TypeVar("T")

CONNECTION_ERRORS = (OperationalError, InterfaceError, DatabaseUnreachable)
FIRST_DELAY = 0.25
MAX_DELAY = 30.0


def reliably(stop: threading.Event, what: str, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``call(*args, **kwargs)``, retried on connection errors until it works or ``stop`` is set.

    ``call`` must be safe to run again after a failure part-way (each state update is one
    transaction, so a failed one changed nothing).
    """
    delay = FIRST_DELAY
    while True:
        try:
            return call(*args, **kwargs)
        except CONNECTION_ERRORS as error:
            if stop.is_set():
                raise
            reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
            log.warning("state database unavailable during %s (%s); retrying in %.1f s", what, reason, delay)
            stop.wait(delay)
            delay = min(delay * 2, MAX_DELAY)
