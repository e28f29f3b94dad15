"""Fixtures of the engine tests; the helpers live in ``engine_support`` (imported by name)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from opticstream_napari.config import PSOCTScanConfig
from opticstream_napari.engine.plans import WISDOM_ENV

sys.path.insert(0, str(Path(__file__).parent))

from engine_support import direct_run, outputs, simulate, tiny_config


@pytest.fixture(scope="session", autouse=True)
def shared_fft_plans(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One FFTW wisdom file for this process, the engines it starts and their dask workers, so a
    direct run and an engine in another process plan their FFTs alike (see engine.plans)."""
    path = tmp_path_factory.mktemp("fftw") / "wisdom.json"
    os.environ[WISDOM_ENV] = str(path)
    yield path
    del os.environ[WISDOM_ENV]


@pytest.fixture(scope="session")
def direct_tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """Outputs of a direct single-pass run over the tiny acquisition every engine test simulates."""
    root = tmp_path_factory.mktemp("direct-tiny")
    config = tiny_config(root)
    simulate(config, root / "raw")
    direct_run(config, root / "raw")
    return outputs(config)


@pytest.fixture
def acquisition(tmp_path: Path) -> tuple[PSOCTScanConfig, Path]:
    """The tiny config and an empty raw folder; tests simulate into it (live or at once)."""
    raw = tmp_path / "raw"
    raw.mkdir()
    return tiny_config(tmp_path), raw
