"""Errors raised in work functions reach the engine from worker processes and dask workers: they pickle."""

from __future__ import annotations

import importlib
import pickle
import pkgutil
from pathlib import Path

import pytest

import opticstream_napari
from opticstream_napari.config.files import ConfigError
from opticstream_napari.io.psoct_raw import RawTileError
from opticstream_napari.io.zyla import SpoolFormatError
from opticstream_napari.naming import NameParseError
from opticstream_napari.state.errors import SchemaMismatch

EXAMPLES = [
    RawTileError(Path("/raw/mosaic_001_image_0003_spectral_0002.nii"), "file size", "393568 bytes", "4096 bytes"),
    NameParseError("tile.txt", "mosaic_NNN_image_NNNN_spectral_NNNN.nii"),
    ConfigError("scan.yaml", ["acquisition.grid_size_y: expected >= 1, found 0"]),
    SpoolFormatError(Path("/raw/strip/spool.dat"), "1048576 bytes", "12 bytes"),
    SchemaMismatch("the database schema is 0003, this code needs 0004", current="0003", expected="0004"),
]


@pytest.mark.parametrize("error", EXAMPLES, ids=lambda e: type(e).__name__)
def test_an_error_survives_pickling_with_its_message_and_fields(error: Exception) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error) and str(copy) == str(error) and vars(copy) == vars(error)


def test_every_error_with_its_own_constructor_is_covered() -> None:
    """A new error class whose ``__init__`` takes fields must join EXAMPLES (and pickle)."""
    found = set()
    for module in pkgutil.walk_packages(opticstream_napari.__path__, "opticstream_napari."):
        if any(part in module.name for part in ("._qt", ".viewer_link", ".cli", "sample_data", "__main__")):
            continue  # GUI and command-line code never runs in a worker
        for value in vars(importlib.import_module(module.name)).values():
            if (isinstance(value, type) and issubclass(value, Exception) and value.__module__ == module.name
                    and "__init__" in vars(value)):
                found.add(value)
    assert found == {type(e) for e in EXAMPLES}
