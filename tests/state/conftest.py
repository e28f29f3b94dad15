"""Fixtures of the state tests: an open service on a fresh database of each backend."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from opticstream_napari.state.service import StateService

# Spawned worker processes import `state_workers` by name; they inherit this search path.
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def state(database_url: str) -> Iterator[StateService]:
    service = StateService.connect(database_url)
    yield service
    service.close()
