"""Fixtures of the mediator tests; the helpers live in ``link_support`` (imported by name)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from opticstream_napari.config import PSOCTScanConfig
from opticstream_napari.simulate.psoct import psoct_preset

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def config(tmp_path: Path) -> PSOCTScanConfig:
    return psoct_preset(tmp_path / "project", "tiny")
