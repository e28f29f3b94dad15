"""Fixtures for the dock widget: plugin settings in the test's folder and a tiny simulated project."""

from __future__ import annotations

from pathlib import Path

import pytest
from npe2 import PluginManifest

from opticstream_napari.cli.simulate_cmd import SimulatedRun, prepare_run


@pytest.fixture(autouse=True)
def _isolated_plugin_settings(plugin_settings: None, npe2pm) -> None:
    """napari's plugin settings live under tmp_path, with our manifest the only plugin registered."""
    if "opticstream-napari" not in npe2pm:
        npe2pm.register(PluginManifest.from_distribution("opticstream-napari"))


@pytest.fixture
def tiny_run(tmp_path: Path) -> SimulatedRun:
    """The tiny PS-OCT preset (2 + 3 columns of 3 tiles), config written, nothing acquired yet."""
    return prepare_run(tmp_path / "acquisition", "psoct", "tiny")
