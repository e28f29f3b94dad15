"""NIfTI en-face writer: X × Y[ × 1] layout, zooms in mm, atomic, focus planes by bucket."""

from __future__ import annotations

import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from opticstream_napari.io.nifti import (
    load_focus_plane,
    read_enface_nifti,
    save_focus_plane,
    write_enface_nifti,
)
from opticstream_napari.io.output import OutputError


def _mosaic() -> np.ndarray:
    return np.random.default_rng(0).normal(60, 5, (30, 45)).astype(np.float64)


def test_enface_is_x_by_y_by_1_float32_with_zooms_in_mm(tmp_path: Path) -> None:
    mosaic = _mosaic()
    path = write_enface_nifti(tmp_path / "mosaic_001_aip.nii.gz", mosaic, (12.0, 10.0),
                              slice_thickness_um=500.0)
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    image = nib.load(str(path))
    assert image.shape == (45, 30, 1)
    assert image.get_data_dtype() == np.float32
    np.testing.assert_allclose(image.header.get_zooms(), (0.010, 0.012, 0.5))
    np.testing.assert_allclose(np.diag(image.affine)[:3], (0.010, 0.012, 0.5))
    assert image.header.get_xyzt_units()[0] == "mm"
    data, pixel = read_enface_nifti(path)
    np.testing.assert_allclose(data, mosaic.astype(np.float32))
    np.testing.assert_allclose(pixel, (12.0, 10.0))


def test_enface_2d_and_uint8_mask(tmp_path: Path) -> None:
    mask = np.zeros((8, 9), np.uint8)
    mask[2:5, 3:7] = 255
    path = write_enface_nifti(tmp_path / "mask.nii", mask, (10.0, 10.0), as_3d=False,
                              dtype=np.uint8)
    image = nib.load(str(path))
    assert image.shape == (9, 8) and image.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(read_enface_nifti(path)[0], mask)


def test_focus_plane_round_trip_per_bucket(tmp_path: Path) -> None:
    plane = np.linspace(0, 7, 35 * 40, dtype=np.float32).reshape(35, 40)
    path = save_focus_plane(tmp_path, "tilted", plane, (10.0, 10.0))
    assert path.name == "focus-tilted.nii" and nib.load(str(path)).shape == (40, 35)
    np.testing.assert_array_equal(load_focus_plane(tmp_path, "tilted"), plane)
    with pytest.raises(FileNotFoundError, match=r"focus-normal\.nii"):
        load_focus_plane(tmp_path, "normal")


def test_writes_are_atomic_and_unwritable_folders_named(tmp_path: Path) -> None:
    write_enface_nifti(tmp_path / "a.nii", _mosaic(), (10.0, 10.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.nii"]
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match=re.escape(str(blocker))):
        write_enface_nifti(blocker / "b.nii", _mosaic(), (10.0, 10.0))
    with pytest.raises(ValueError, match="2D"):
        write_enface_nifti(tmp_path / "c.nii", np.zeros((2, 3, 4)), (10.0, 10.0))
