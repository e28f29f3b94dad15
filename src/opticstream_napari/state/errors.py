"""Errors of the state store; each message names the database (password hidden) and the remedy."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial


class StateError(Exception):
    """Base of every state-store error, so callers can catch them as one family."""


class DatabaseUnreachable(StateError):
    """The database could not be opened or reached."""


class DatabaseMissing(StateError):
    """A SQLite file that should already exist does not (and was not to be created)."""


class SchemaMismatch(StateError):
    """The database schema is older or newer than this version of the code."""

    def __init__(self, message: str, *, current: str | None, expected: str) -> None:
        super().__init__(message)
        self.current = current
        self.expected = expected

    def __reduce__(self) -> tuple[Callable[..., SchemaMismatch], tuple[object, ...]]:
        return partial(type(self), current=self.current, expected=self.expected), (str(self),)


class NodeNotFound(StateError, LookupError):
    """A project or node named by an identity does not exist."""


class ClaimLost(StateError):
    """A worker tried to finish a unit it no longer holds (its claim expired and was recovered)."""
