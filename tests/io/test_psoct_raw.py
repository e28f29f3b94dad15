from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import scipy.io

from opticstream_napari.io.psoct_raw import (
    NIFTI_HEADER_BYTES,
    RawTileError,
    TileGeometry,
    full_depth,
    pack_12bit,
    read_calibration,
    read_complex_tile,
    read_dispersion,
    read_spectral_tile,
    unpack_12bit,
    write_calibration,
    write_complex_tile,
    write_dispersion,
    write_spectral_tile,
)

GEOMETRY = TileGeometry(alines=6, blines=4, spectral_length=64, depth=8)


def _spectral(seed: int = 0, high: int = 4096) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, high, GEOMETRY.spectral_shape, dtype=np.uint16)


def _jones(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = (GEOMETRY.alines, GEOMETRY.blines, GEOMETRY.depth, 2)
    j1, j2 = (rng.normal(size=shape).astype(np.float32) for _ in range(2))
    return j1[..., 0] + 1j * j1[..., 1], j2[..., 0] + 1j * j2[..., 1]


def _assert_names(error: pytest.ExceptionInfo[RawTileError], path: Path, *parts: str) -> None:
    message = str(error.value)
    assert str(path) in message and "expected" in message and "found" in message
    for part in parts:
        assert part in message, message


# --------------------------------------------------------------------------- spectral


def test_spectral_nifti_round_trip_is_memory_mapped(tmp_path: Path) -> None:
    data = _spectral()
    path = write_spectral_tile(tmp_path / "t.nii", data)
    assert path.stat().st_size == NIFTI_HEADER_BYTES + data.nbytes
    tile = read_spectral_tile(path, GEOMETRY)
    np.testing.assert_array_equal(tile.to_array(), data)
    np.testing.assert_array_equal(tile.channel(2), data[:, 1])
    np.testing.assert_array_equal(tile.stored[:, 1], data[:, 1, :, ::-1])
    assert isinstance(tile.stored, np.memmap)
    assert np.shares_memory(tile.channel(2), tile.stored)


def test_spectral_nifti_is_readable_with_nibabel(tmp_path: Path) -> None:
    data = _spectral()
    image = nib.load(write_spectral_tile(tmp_path / "t.nii", data))
    assert image.shape == (64, 6, 2, 4)
    on_disk = np.asarray(image.dataobj)
    np.testing.assert_array_equal(on_disk[:, :, 0, :], data[:, 0].transpose(2, 1, 0))
    np.testing.assert_array_equal(on_disk[::-1, :, 1, :], data[:, 1].transpose(2, 1, 0))


def test_12bit_layout_follows_the_instrument() -> None:
    packed = np.array([0xAB, 0xCD, 0xEF], dtype=np.uint8)
    np.testing.assert_array_equal(unpack_12bit(packed), [0xAB + 0xD * 256, 0xC + 0xEF * 16])
    np.testing.assert_array_equal(pack_12bit(unpack_12bit(packed)), packed)


def test_12bit_and_16bit_files_hold_the_same_samples(tmp_path: Path) -> None:
    data = _spectral(1)
    nii = read_spectral_tile(write_spectral_tile(tmp_path / "t.nii", data), GEOMETRY)
    raw_path = write_spectral_tile(tmp_path / "t.raw", data, packed_12bit=True)
    assert raw_path.stat().st_size == data.size * 3 // 2
    raw = read_spectral_tile(raw_path, GEOMETRY)
    np.testing.assert_array_equal(raw.to_array(), nii.to_array())
    np.testing.assert_array_equal(raw.stored, nii.stored)


def test_12bit_packing_rejects_values_above_4095(tmp_path: Path) -> None:
    data = _spectral()
    data[0, 0, 0, 0] = 4096
    with pytest.raises(ValueError, match="4095"):
        write_spectral_tile(tmp_path / "t.raw", data, packed_12bit=True)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("change", [-10, 7])
def test_spectral_nifti_size_errors(tmp_path: Path, change: int) -> None:
    path = write_spectral_tile(tmp_path / "t.nii", _spectral())
    expected = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.truncate(expected + change)
    with pytest.raises(RawTileError) as error:
        read_spectral_tile(path, GEOMETRY)
    problem = "truncated" if change < 0 else "oversized"
    _assert_names(error, path, problem, f"{expected} bytes", f"{expected + change} bytes")


def test_a_file_shorter_than_a_header_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "t.nii"
    path.write_bytes(b"\x00" * 100)
    with pytest.raises(RawTileError) as error:
        read_spectral_tile(path, GEOMETRY)
    _assert_names(error, path, "352", "100")


def test_wrong_sizeof_hdr_is_reported(tmp_path: Path) -> None:
    path = write_spectral_tile(tmp_path / "t.nii", _spectral())
    with open(path, "r+b") as handle:
        handle.write(np.int32(340).tobytes())
    with pytest.raises(RawTileError) as error:
        read_spectral_tile(path, GEOMETRY)
    _assert_names(error, path, "sizeof_hdr", "348", "340")


def test_wrong_dims_are_reported(tmp_path: Path) -> None:
    path = write_spectral_tile(tmp_path / "t.nii", _spectral())
    other = TileGeometry(alines=5, blines=4, spectral_length=64, depth=8)
    with pytest.raises(RawTileError) as error:
        read_spectral_tile(path, other)
    _assert_names(error, path, "dims", "(64, 5, 2, 4)", "(64, 6, 2, 4)")


def test_wrong_datatype_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "t.nii"
    nib.save(nib.Nifti1Image(np.zeros((64, 6, 2, 4), np.float32), np.eye(4)), path)
    with pytest.raises(RawTileError) as error:
        read_spectral_tile(path, GEOMETRY)
    _assert_names(error, path, "datatype", "uint16", "float32")


@pytest.mark.parametrize("change", [-3, 3])
def test_12bit_size_errors(tmp_path: Path, change: int) -> None:
    path = write_spectral_tile(tmp_path / "t.raw", _spectral(), packed_12bit=True)
    expected = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.truncate(expected + change)
    with pytest.raises(RawTileError) as error:
        read_spectral_tile(path, GEOMETRY)
    _assert_names(error, path, f"{expected} bytes", f"{expected + change} bytes")


def test_unknown_spectral_suffix(tmp_path: Path) -> None:
    path = tmp_path / "t.dat"
    path.write_bytes(b"")
    with pytest.raises(RawTileError) as error:
        read_spectral_tile(path, GEOMETRY)
    _assert_names(error, path, ".nii", ".dat")


# --------------------------------------------------------------------------- complex


def test_complex_round_trip_and_reversed_depth_on_disk(tmp_path: Path) -> None:
    j1, j2 = _jones()
    path = write_complex_tile(tmp_path / "c.nii", j1, j2)
    tile = read_complex_tile(path, GEOMETRY)
    assert tile.j1.dtype == np.complex64
    np.testing.assert_array_equal(tile.j1, j1.astype(np.complex64))
    np.testing.assert_array_equal(tile.j2, j2.astype(np.complex64))
    on_disk = np.asarray(nib.load(path).dataobj)
    a = GEOMETRY.alines
    assert on_disk.shape == (4 * a, GEOMETRY.blines, GEOMETRY.depth)
    for block, part in enumerate((j1.real, j1.imag, j2.real, j2.imag)):
        np.testing.assert_array_equal(on_disk[block * a : (block + 1) * a], part[:, :, ::-1])


def test_complex_nan_is_reported(tmp_path: Path) -> None:
    j1, j2 = _jones()
    j2[1, 2, 3] = np.nan
    path = write_complex_tile(tmp_path / "c.nii", j1, j2)
    with pytest.raises(RawTileError) as error:
        read_complex_tile(path, GEOMETRY)
    _assert_names(error, path, "finite", "1 NaN")


def test_complex_wrong_depth_is_reported(tmp_path: Path) -> None:
    path = write_complex_tile(tmp_path / "c.nii", *_jones())
    deeper = TileGeometry(alines=6, blines=4, spectral_length=64, depth=9)
    with pytest.raises(RawTileError) as error:
        read_complex_tile(path, deeper)
    _assert_names(error, path, "(24, 4, 9)", "(24, 4, 8)")


def test_complex_truncated_is_reported(tmp_path: Path) -> None:
    path = write_complex_tile(tmp_path / "c.nii", *_jones())
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.truncate(size - 4)
    with pytest.raises(RawTileError) as error:
        read_complex_tile(path, GEOMETRY)
    _assert_names(error, path, "truncated", f"{size} bytes", f"{size - 4} bytes")


def test_full_depth() -> None:
    assert full_depth(2048, 24) == 1000
    with pytest.raises(ValueError, match="no depth"):
        full_depth(64, 32)


# --------------------------------------------------------------------------- calibration assets


def _calibration(path: Path, length: int = 512) -> Path:
    left = np.linspace(100, 1900, 9) * length / 2048
    return write_calibration(path, np.stack([left, left + 3], axis=1), np.linspace(1240, 1360, 9))


def test_calibration_round_trip_and_k_grid(tmp_path: Path) -> None:
    calibration = read_calibration(_calibration(tmp_path / "wave-pixel.mat"), 512)
    assert calibration.mu.shape == (9, 2) and calibration.wave_prime.shape == (9,)
    pixels = calibration.pixel_wavelengths_nm()
    target = calibration.target_wavelengths_nm()
    assert pixels.shape == (2, 512) and target.shape == (512,)
    k = 2 * np.pi / target
    np.testing.assert_allclose(np.diff(k), np.diff(k)[0], rtol=1e-9)
    assert np.all(np.diff(target) > 0)
    assert target[0] >= pixels[:, 0].max() - 1e-9 and target[-1] <= pixels[:, -1].min() + 1e-9


def test_calibration_for_a_longer_spectrum_is_reported(tmp_path: Path) -> None:
    path = _calibration(tmp_path / "wave-pixel.mat", 2048)
    with pytest.raises(RawTileError) as error:
        read_calibration(path, 512)
    _assert_names(error, path, "within 1..512", "1903")


def test_calibration_missing_variable_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "wave-pixel.mat"
    scipy.io.savemat(path, {"mu": np.ones((9, 2))})
    with pytest.raises(RawTileError) as error:
        read_calibration(path, 512)
    _assert_names(error, path, "wave_prime", "missing")


def test_calibration_shape_mismatch_is_reported(tmp_path: Path) -> None:
    path = write_calibration(tmp_path / "wave-pixel.mat", np.ones((9, 3)) * 10, np.linspace(1240, 1360, 9))
    with pytest.raises(RawTileError) as error:
        read_calibration(path, 512)
    _assert_names(error, path, "(N, 2)", "(9, 3)")


def test_unreadable_calibration_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "wave-pixel.mat"
    path.write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(RawTileError) as error:
        read_calibration(path, 512)
    _assert_names(error, path, "unreadable")


def test_dispersion_round_trip_and_errors(tmp_path: Path) -> None:
    phase = np.linspace(-1, 1, 128) ** 2
    path = write_dispersion(tmp_path / "dispersion.dat", phase)
    np.testing.assert_array_equal(read_dispersion(path, 64), phase)
    with pytest.raises(RawTileError) as error:
        read_dispersion(path, 100)
    _assert_names(error, path, "800 bytes", "1024 bytes")
    write_dispersion(path, np.full(64, np.nan))
    with pytest.raises(RawTileError) as error:
        read_dispersion(path, 64)
    _assert_names(error, path, "finite")
