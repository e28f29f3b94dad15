"""Strip and channel MIP TIFFs: written plainly so readers map them, shapes checked from headers."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import tifffile

from opticstream_napari.io.mip_tiff import MipShapeError, common_mip_shape, mapped_mip, mip_shape, read_mip, write_mip


def test_a_written_mip_reads_back_mapped(tmp_path: Path) -> None:
    mip = np.arange(12, dtype=np.uint16).reshape(3, 4)
    path = write_mip(tmp_path / "strip_proc-mip.tiff", mip)
    read = read_mip(path)
    assert isinstance(read, np.memmap), "plain and contiguous: a strided read touches a fraction"
    np.testing.assert_array_equal(read, mip)
    assert [p.name for p in tmp_path.iterdir()] == ["strip_proc-mip.tiff"], "no temporary left behind"


def test_a_compressed_mip_is_still_read(tmp_path: Path) -> None:
    path = tmp_path / "other.tiff"
    mip = np.arange(64, dtype=np.uint16).reshape(8, 8)
    tifffile.imwrite(path, mip, compression="zlib")
    np.testing.assert_array_equal(read_mip(path), mip)


def test_shapes_are_checked_from_the_header(tmp_path: Path) -> None:
    good = [write_mip(tmp_path / f"s{i}.tiff", np.zeros((4, 6), np.uint16)) for i in range(2)]
    assert common_mip_shape(good) == (4, 6)
    shorter = write_mip(tmp_path / "short.tiff", np.zeros((4, 5), np.uint16))
    with pytest.raises(MipShapeError, match=re.escape(f"{shorter}: its MIP is (4, 5), s0.tiff's is (4, 6)")):
        common_mip_shape([*good, shorter])
    floats = tmp_path / "float.tiff"
    tifffile.imwrite(floats, np.zeros((4, 6), np.float32))
    with pytest.raises(MipShapeError, match=re.escape(f"{floats}: a strip MIP is a 2D uint16 image, found shape "
                                                      "(4, 6) of float32")):
        mip_shape(floats)


def test_a_mapped_mip_is_a_tiff_once_flushed(tmp_path: Path) -> None:
    mosaic = mapped_mip(tmp_path / "mosaic.tiff", (5, 3))
    mosaic[:] = 7
    mosaic.flush()
    del mosaic
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "mosaic.tiff"), np.full((5, 3), 7, np.uint16))


def test_a_file_that_is_no_tiff_is_named(tmp_path: Path) -> None:
    broken = tmp_path / "strip_proc-mip.tiff"
    broken.write_bytes(b"partial")
    with pytest.raises(MipShapeError, match=re.escape(f"{broken}: a strip MIP is a 2D uint16 TIFF, found an "
                                                      "unreadable file (not a TIFF file")):
        mip_shape(broken)
