"""JPEG previews: windowed grey, orientation hue in degrees, NaN black."""

from __future__ import annotations

import re
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from opticstream_napari.io import preview
from opticstream_napari.io.downsample import Reduction
from opticstream_napari.io.output import OutputError
from opticstream_napari.io.preview import (
    JPEG_MAX_SIDE,
    default_window,
    grey_image,
    orientation_image,
    write_preview,
)


def test_default_windows() -> None:
    data = np.linspace(0, 100, 10001, dtype=np.float32)
    data[:50] = np.nan
    lo, hi = default_window(data, "aip")
    assert 0.9 < lo < 1.6 and 98.5 < hi < 99.5
    assert default_window(data, "ori") == (-90.0, 90.0)
    assert default_window(np.full(5, np.nan), "ret") == (0.0, 1.0)
    assert default_window(np.full(5, 3.0), "ret") == (3.0, 4.0)


def test_grey_window_and_nan_black() -> None:
    image = grey_image(np.array([[0.0, 5.0, 10.0, 20.0, np.nan]]), (0.0, 10.0))
    np.testing.assert_array_equal(image, [[0, 127, 255, 255, 0]])


def test_orientation_hue_is_in_degrees_and_180_periodic() -> None:
    angles = np.array([[0.0, 60.0, -60.0, 90.0, -90.0, np.nan]], dtype=np.float32)
    rgb = orientation_image(angles)
    np.testing.assert_array_equal(rgb[0, 0], [255, 0, 0])
    np.testing.assert_array_equal(rgb[0, 1], [0, 255, 0])
    np.testing.assert_array_equal(rgb[0, 2], [0, 0, 255])
    np.testing.assert_array_equal(rgb[0, 3], rgb[0, 4])
    np.testing.assert_array_equal(rgb[0, 5], [0, 0, 0])


def test_orientation_brightness_from_retardance() -> None:
    angles = np.zeros((1, 3), np.float32)
    retardance = np.array([[0.0, 5.0, 10.0]], np.float32)
    rgb = orientation_image(angles, retardance, (0.0, 10.0))
    np.testing.assert_array_equal(rgb[0, :, 0], [0, 128, 255])
    with pytest.raises(ValueError):
        orientation_image(angles, retardance[:, :2])


def test_write_preview_grey_and_colour(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    aip = rng.normal(60, 5, (300, 500)).astype(np.float32)
    grey = write_preview(tmp_path / "mosaic_001_aip.jpg", aip, "aip", max_size=200)
    with Image.open(grey) as image:
        assert image.format == "JPEG" and image.mode == "L" and max(image.size) == 200
    ori = rng.uniform(-90, 90, (40, 50)).astype(np.float32)
    colour = write_preview(tmp_path / "mosaic_001_ori.jpg", ori, "ori", value=aip[:40, :50])
    with Image.open(colour) as image:
        assert image.mode == "RGB" and image.size == (50, 40)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mosaic_001_aip.jpg", "mosaic_001_ori.jpg"]
    blocker = tmp_path / "mosaic_001_aip.jpg"
    with pytest.raises(OutputError, match=re.escape(str(blocker))):
        write_preview(blocker / "x.jpg", aip, "aip")


def test_a_preview_taller_than_a_jpeg_can_be_is_shrunk_to_fit(tmp_path: Path) -> None:
    """A hundred-strip light-sheet mosaic is over 100,000 rows; libjpeg stops at 65,500."""
    tall = np.tile(np.array([[0, 1000, 1000, 0]], np.uint16), (70_000, 1))
    path = write_preview(tmp_path / "tall.jpg", tall, "mip", window=(0.0, 1000.0), max_size=100_000)
    with Image.open(path) as image:
        assert image.size[1] == JPEG_MAX_SIDE and image.size[0] >= 1
        middle = np.asarray(image)[JPEG_MAX_SIDE // 2]
    assert middle.max() > 200, "the bright columns survive the shrink"


def test_grey_levels_are_the_same_made_in_row_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    data = np.linspace(-5.0, 15.0, 7 * 5, dtype=np.float32).reshape(7, 5)
    data[3, 2] = np.nan
    whole = grey_image(data, (0.0, 10.0))
    monkeypatch.setattr(preview, "_BLOCK_PIXELS", 10)
    np.testing.assert_array_equal(grey_image(data, (0.0, 10.0)), whole)
    expected = np.nan_to_num(np.clip(data / 10.0, 0, 1) * 255.0, nan=0.0).astype(np.uint8)
    np.testing.assert_array_equal(whole, expected)


def test_a_large_grey_preview_averages_what_it_shrinks(tmp_path: Path) -> None:
    stripes = np.tile(np.array([0, 1000], np.uint16), (400, 200))  # 400 × 400, one-pixel stripes
    path = write_preview(tmp_path / "stripes.png", stripes, "mip", window=(0.0, 1000.0), max_size=100)
    with Image.open(path) as image:
        assert image.size == (100, 100)
        pixels = np.asarray(image)
    assert np.abs(pixels.astype(int) - 127).max() <= 1, "mid-grey, not a stride's stripes"


def test_a_preview_of_a_mapped_mosaic_needs_no_full_size_copy(tmp_path: Path) -> None:
    """A channel MIP mosaic can be larger than memory: the preview is made a band at a time."""
    mosaic = np.lib.format.open_memmap(tmp_path / "mosaic.npy", mode="w+", dtype=np.uint16, shape=(8192, 4096))
    mosaic[:] = 500
    tracemalloc.start()
    try:
        write_preview(tmp_path / "mosaic.jpg", mosaic, "mip", window=(0.0, 1000.0), max_size=256)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 24 * 2**20, f"peak {peak / 2**20:.1f} MiB; one uint8 copy of the mosaic alone is 32 MiB"


def test_a_large_orientation_preview_is_pooled_as_angles_before_it_is_coloured(tmp_path: Path) -> None:
    angles = np.tile(np.array([89.0, -89.0], np.float32), (1000, 500))  # across the ±90° wrap
    retardance = np.tile(np.array([0.0, 10.0], np.float32), (1000, 500))
    pooled, brightness = preview._halved(angles, retardance, 250, Reduction.CIRCULAR_180)
    assert pooled.shape == brightness.shape == (250, 250), "halved while at least twice the side"
    np.testing.assert_allclose(np.abs(pooled), 90.0, atol=1e-3)
    np.testing.assert_allclose(brightness, 5.0)
    path = write_preview(tmp_path / "ori.png", angles, "ori", value=retardance, max_size=250)
    with Image.open(path) as image:
        assert image.size == (250, 250)
        red, green, blue = np.asarray(image).reshape(-1, 3).mean(axis=0)
    assert red < 5 and green > 100 and blue > 100, "±90° is cyan, not the red of a 0° average"
    with pytest.raises(ValueError, match=r"value \(3, 3\) does not match orientation \(1000, 1000\)"):
        write_preview(tmp_path / "ori.png", angles, "ori", value=retardance[:3, :3], max_size=250)
