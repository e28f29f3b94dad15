"""Zyla spool sets: ini parsing, padding, lazy reading, info trimming and every format error."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from opticstream_napari.io.zyla import (
    CameraInfo,
    SpoolFormatError,
    ZylaMetadata,
    ZylaStrip,
    list_spool_files,
    read_camera_info,
    read_zyla_metadata,
    write_camera_info,
    write_spool_set,
)
from opticstream_napari.naming import LSM_ACQUISITION_INI, LSM_SPOOL_MARKER, spool_file_name

SPEC_INI = (
    "[data]\nAOIHeight = 64\nAOIWidth = 128\nAOIStride = 256\nPixelEncoding = Mono16\n"
    "ImageSizeBytes = 16896\n\n[multiimage]\nImagesPerFile = 2\n"
)
# 7 pixels per row padded to 8 (16-byte stride), odd height: one padding row.
SMALL = ZylaMetadata(aoi_height=5, aoi_width=7, aoi_stride=16, pixel_encoding="Mono16",
                     images_per_file=2)


def _frames(metadata: ZylaMetadata, count: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    high = np.iinfo(metadata.dtype).max
    shape = (count, metadata.aoi_height, metadata.aoi_width)
    return rng.integers(1, high, size=shape, endpoint=True).astype(metadata.dtype)


def _spool_set(folder: Path, metadata: ZylaMetadata = SMALL, files: int = 3) -> np.ndarray:
    frames = _frames(metadata, files * metadata.images_per_file)
    assert write_spool_set(folder, metadata, frames) == files
    return frames


def test_ini_with_bom_parses_to_spec_geometry(tmp_path: Path) -> None:
    (tmp_path / LSM_ACQUISITION_INI).write_bytes(b"\xef\xbb\xbf" + SPEC_INI.encode())
    metadata = read_zyla_metadata(tmp_path)
    assert metadata == ZylaMetadata(64, 128, 256, "Mono16", 2, 16896)
    assert metadata.dtype == np.dtype("<u2")
    assert metadata.num_rows == 66
    assert metadata.file_shape == (2, 66, 128)
    assert metadata.frame_bytes == 66 * 256


def test_ini_without_bom_and_mono8(tmp_path: Path) -> None:
    text = SPEC_INI.replace("Mono16", "Mono8").replace("AOIStride = 256", "AOIStride = 128")
    (tmp_path / LSM_ACQUISITION_INI).write_text(text, encoding="utf-8")
    metadata = read_zyla_metadata(tmp_path)
    assert metadata.dtype == np.uint8
    assert metadata.row_pixels == 128


@pytest.mark.parametrize(("height", "rows"), [(64, 66), (63, 64), (1, 2), (2, 4)])
def test_padding_rows(height: int, rows: int) -> None:
    assert ZylaMetadata(height, 8, 16, "Mono16", 1).num_rows == rows


def test_writer_uses_bom_and_reversed_names(tmp_path: Path) -> None:
    metadata = ZylaMetadata(3, 4, 8, "Mono16", 1)
    frames = _frames(metadata, 13)
    write_spool_set(tmp_path, metadata, frames)
    assert (tmp_path / LSM_ACQUISITION_INI).read_bytes().startswith(b"\xef\xbb\xbf[data]")
    assert (tmp_path / LSM_SPOOL_MARKER).read_bytes() == b""
    names = {p.name for p in tmp_path.glob("*spool.dat")}
    assert {"0000000000spool.dat", "1000000000spool.dat", "2100000000spool.dat"} <= names
    # Lexical order of the names is not acquisition order; the reader must follow the indices.
    strip = ZylaStrip(tmp_path, crop_padding=True)
    assert [p.name for p in strip.files] == [spool_file_name(i) for i in range(13)]
    np.testing.assert_array_equal(strip.read_frames(), frames.transpose(1, 2, 0))


def test_round_trip_keeps_padding_by_default(tmp_path: Path) -> None:
    frames = _spool_set(tmp_path)
    strip = ZylaStrip(tmp_path)
    assert strip.shape == (6, 8, 6) and strip.axes == ("z", "y", "x")
    assert (tmp_path / spool_file_name(0)).stat().st_size == 2 * 6 * 16
    volume = strip.read_frames()
    np.testing.assert_array_equal(volume[:5, :7], frames.transpose(1, 2, 0))
    assert not volume[5:].any() and not volume[:, 7:].any()
    np.testing.assert_array_equal(strip[:, :, :], volume)


def test_round_trip_cropped_equals_written_frames(tmp_path: Path) -> None:
    frames = _spool_set(tmp_path)
    strip = ZylaStrip(tmp_path, crop_padding=True)
    truth = frames.transpose(1, 2, 0)
    assert strip.shape == truth.shape
    np.testing.assert_array_equal(strip.read_frames(1, 5), truth[:, :, 1:5])
    np.testing.assert_array_equal(strip.read_frames(3, 3), truth[:, :, 3:3])
    with pytest.raises(IndexError):
        strip.read_frames(0, 7)


@pytest.mark.parametrize(
    "key",
    [
        (slice(1, 4), slice(2, 6), slice(1, 5)),  # across a file boundary, inside the padding-free area
        (slice(None), slice(None), slice(3, 4)),  # one frame
        (slice(4, None), slice(5, None), slice(None)),  # into the padding row and columns
        (slice(2, 2), slice(None), slice(None)),  # empty
        (slice(-3, None), slice(0, 100), slice(2, -1)),  # negative and oversized bounds, as numpy
    ],
)
def test_a_block_reads_only_its_rows_columns_and_frames(tmp_path: Path, key: tuple[slice, ...]) -> None:
    _spool_set(tmp_path)
    strip = ZylaStrip(tmp_path)
    whole = strip.read_frames()
    np.testing.assert_array_equal(strip[key], whole[key])


def test_a_block_is_asked_for_by_contiguous_slices(tmp_path: Path) -> None:
    _spool_set(tmp_path)
    strip = ZylaStrip(tmp_path)
    with pytest.raises(TypeError, match="tuple of 3 slices"):
        strip[0, :, :]  # type: ignore[index]
    with pytest.raises(TypeError, match="tuple of 3 slices"):
        strip[:, :]  # type: ignore[index]
    with pytest.raises(ValueError, match="step 2"):
        strip[:, :, ::2]


def test_a_spool_file_cut_short_after_listing_is_named(tmp_path: Path) -> None:
    _spool_set(tmp_path)
    strip = ZylaStrip(tmp_path)
    cut = tmp_path / spool_file_name(1)
    cut.write_bytes(cut.read_bytes()[:100])
    with pytest.raises(SpoolFormatError, match=re.escape(f"{cut}: expected 96 bytes at offset 96, found 4 bytes")):
        strip[:, :, 2:4]


@pytest.mark.parametrize(
    ("total", "background", "files"), [(6, 0, 3), (5, 0, 3), (4, 0, 2), (6, 3, 2), (2, 1, 1)]
)
def test_info_file_trims_trailing_files(
    tmp_path: Path, total: int, background: int, files: int
) -> None:
    frames = _spool_set(tmp_path / "Run1")
    info = write_camera_info(tmp_path / "info.mat", total, background)
    assert read_camera_info(info) == CameraInfo(total, background)
    strip = ZylaStrip(tmp_path / "Run1", info_file=info, crop_padding=True)
    assert len(strip.files) == files
    np.testing.assert_array_equal(strip.read_frames(), frames[: 2 * files].transpose(1, 2, 0))


def test_info_file_asking_for_more_files_than_exist(tmp_path: Path) -> None:
    _spool_set(tmp_path / "Run1")
    info = write_camera_info(tmp_path / "info.mat", 8)
    with pytest.raises(SpoolFormatError, match=r"expected 4 spool files for 8 frames, found 3"):
        ZylaStrip(tmp_path / "Run1", info_file=info)


def test_info_file_without_camera_fields(tmp_path: Path) -> None:
    import scipy.io

    path = tmp_path / "info.mat"
    scipy.io.savemat(path, {"info": {"camera": {"kineticSeriesLength": 4.0}}})
    with pytest.raises(SpoolFormatError) as caught:
        read_camera_info(path)
    assert caught.value.path == path
    assert "info.camera.backgroundFramesNum" in str(caught.value)


def _drop_ini_key(folder: Path) -> Path:
    ini = folder / LSM_ACQUISITION_INI
    text = ini.read_text(encoding="utf-8-sig")
    ini.write_text(text.replace("AOIStride = 16\n", ""), encoding="utf-8-sig")
    return ini


def _set_encoding(folder: Path) -> Path:
    ini = folder / LSM_ACQUISITION_INI
    text = ini.read_text(encoding="utf-8-sig")
    ini.write_text(text.replace("Mono16", "Mono12Packed"), encoding="utf-8-sig")
    return ini


def _remove(name: str):
    def damage(folder: Path) -> Path:
        (folder / name).unlink()
        return folder / name

    return damage


def _truncate(folder: Path) -> Path:
    path = folder / spool_file_name(1)
    path.write_bytes(path.read_bytes()[:-10])
    return path


def _gap(folder: Path) -> Path:
    (folder / spool_file_name(1)).unlink()
    return folder / spool_file_name(2)


def _bad_name(folder: Path) -> Path:
    path = folder / "12spool.dat"
    path.write_bytes(b"")
    return path


@pytest.mark.parametrize(
    ("damage", "expected", "found"),
    [
        (_remove(LSM_ACQUISITION_INI), "acquisition metadata", "no such file"),
        (_remove(LSM_SPOOL_MARKER), "spool marker", "no such file"),
        (_drop_ini_key, "key AOIStride in section [data]", "no such key"),
        (_set_encoding, "PixelEncoding in ['Mono16', 'Mono8']", "'Mono12Packed'"),
        (_truncate, "192 bytes (2 frames of 96 bytes)", "182 bytes"),
        (_gap, "spool index 1 (1000000000spool.dat)", "index 2"),
        (_bad_name, "<10 digits>spool.dat", "a name that does not parse"),
    ],
    ids=["no-ini", "no-marker", "missing-key", "encoding", "size", "gap", "name"],
)
def test_errors_name_file_expected_and_found(
    tmp_path: Path, damage, expected: str, found: str
) -> None:
    _spool_set(tmp_path)
    culprit = damage(tmp_path)
    with pytest.raises(SpoolFormatError) as caught:
        ZylaStrip(tmp_path)
    error = caught.value
    assert isinstance(error, ValueError)
    assert error.path == culprit
    assert expected in error.expected and found in error.found
    assert str(culprit) in str(error) and expected in str(error) and found in str(error)


def test_empty_spool_set_is_an_error(tmp_path: Path) -> None:
    _spool_set(tmp_path)
    for path in tmp_path.glob("*spool.dat"):
        path.unlink()
    with pytest.raises(SpoolFormatError, match="at least one spool file"):
        list_spool_files(tmp_path, SMALL)


def test_metadata_rejects_inconsistent_geometry() -> None:
    with pytest.raises(ValueError, match="AOIStride"):
        ZylaMetadata(4, 8, 15, "Mono16", 1)
    with pytest.raises(ValueError, match="PixelEncoding"):
        ZylaMetadata(4, 8, 16, "Mono32", 1)
