"""Per-tile outputs (names, layout, types, voxel sizes, quantisation, all-or-nothing) and the
file-level entry point's handling of bad input: each error names the file, what was expected
and what was found, and leaves no output behind."""

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from opticstream_napari import naming
from opticstream_napari.config import PSOCTScanConfig, TileSavingType
from opticstream_napari.io import psoct_outputs
from opticstream_napari.io.ome_zarr import is_complete, open_pyramid
from opticstream_napari.io.psoct_outputs import (
    QUANTISATION,
    TileVolume,
    processed_folder,
    read_volume_nifti,
    tile_output_paths,
    write_tile_outputs,
    write_volume_nifti,
)
from opticstream_napari.io.psoct_raw import (
    NIFTI_HEADER_BYTES,
    RawTileError,
    read_spectral_tile,
    write_calibration,
    write_complex_tile,
    write_spectral_tile,
)
from opticstream_napari.io.psoct_tile import InputLimits, TileProcessor, reconstruct_tile_file
from opticstream_napari.simulate.psoct import psoct_preset, simulate_psoct

MOSAIC, IMAGE = 2, 3


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> dict[TileSavingType, tuple[PSOCTScanConfig, Path]]:
    """One tiny acquisition per raw format; tests copy what they break."""
    out = {}
    for fmt in (TileSavingType.SPECTRAL, TileSavingType.SPECTRAL_12BIT, TileSavingType.COMPLEX):
        root = tmp_path_factory.mktemp(fmt.value)
        config = psoct_preset(root / "project", "tiny", tile_saving_type=fmt)
        simulate_psoct(config, root / "raw", slices=1, seed=3)
        out[fmt] = (config, root / "raw")
    return out


def _project(config: PSOCTScanConfig, tmp_path: Path, **processing: object) -> PSOCTScanConfig:
    """The config moved to a fresh project folder (calibration copied), with processing overrides."""
    project = tmp_path / "project"
    project.mkdir(parents=True)
    shutil.copy(config.project_base_path / naming.CALIBRATION_FILE, project / naming.CALIBRATION_FILE)
    return config.model_copy(update={
        "project_base_path": project,
        "processing": config.processing.model_copy(update=processing),
    })


def _raw_name(fmt: TileSavingType) -> str:
    if fmt is TileSavingType.COMPLEX:
        return naming.psoct_complex_tile_name(MOSAIC, IMAGE)
    return naming.psoct_spectral_tile_name(MOSAIC, IMAGE, packed_12bit=fmt is TileSavingType.SPECTRAL_12BIT)


def _outputs_left(config: PSOCTScanConfig) -> list[Path]:
    folder = processed_folder(config, MOSAIC)
    return sorted(folder.iterdir()) if folder.exists() else []


# --------------------------------------------------------------------------- outputs


def test_every_configured_output_has_its_name_layout_type_and_voxel_size(simulated, tmp_path: Path) -> None:
    config, raw = simulated[TileSavingType.SPECTRAL]
    config = _project(config, tmp_path)
    outputs = TileProcessor(config, workers=2).process(raw / _raw_name(TileSavingType.SPECTRAL), MOSAIC, IMAGE)
    result = outputs.result
    expected = {m.value for m in config.enface_modalities} | {"dBI", "R3D", "O3D"}
    assert {p.name for p in outputs.paths} == {naming.processed_tile_name(MOSAIC, IMAGE, m) for m in expected}
    assert all(p.parent == config.project_base_path / "slice-01" / "processed" for p in outputs.paths)
    assert _outputs_left(config) == sorted(outputs.paths)
    blines, alines, depth = result.volumes.dbi.shape
    for path in outputs.paths:
        image = nib.load(str(path))
        modality = path.stem.rsplit("_", 1)[1]
        assert image.get_data_dtype() == np.float32
        assert image.header.get_xyzt_units()[0] == "mm"
        if modality in result.enface:
            assert image.shape == (alines, blines, 1)
            np.testing.assert_allclose(image.header.get_zooms(), (0.01, 0.01, 0.5))
            np.testing.assert_array_equal(np.asarray(image.dataobj)[:, :, 0].T, result.enface[modality])
        else:
            assert image.shape == (alines, blines, depth)
            np.testing.assert_allclose(image.header.get_zooms(), (0.01, 0.01, 0.0025))
            volume, voxel = read_volume_nifti(path)
            np.testing.assert_array_equal(volume, getattr(result.volumes, modality.lower()))
            np.testing.assert_allclose(voxel, (10.0, 10.0, 2.5))


@pytest.mark.parametrize("dtype", ["uint16", "uint8"])
def test_quantised_volumes_read_back_in_physical_units_within_half_a_step(simulated, tmp_path: Path,
                                                                          dtype: str) -> None:
    config, raw = simulated[TileSavingType.SPECTRAL]
    config = _project(config, tmp_path, volume_dtype=dtype, depth=150)
    outputs = TileProcessor(config).process(raw / _raw_name(TileSavingType.SPECTRAL), MOSAIC, IMAGE)
    for name in ("dBI", "R3D", "O3D"):
        path = tile_output_paths(config, MOSAIC, IMAGE)[name]
        image = nib.load(str(path))
        assert image.get_data_dtype() == np.dtype(dtype)
        assert image.shape[2] == 150
        q = QUANTISATION[dtype][name]
        truth = getattr(outputs.result.volumes, name.lower())[..., :150]
        low, high = q.inter, q.inter + q.top * q.slope
        stored, _ = read_volume_nifti(path)
        np.testing.assert_allclose(stored, np.clip(truth, low, high), atol=q.slope / 2 + 1e-4)


@pytest.mark.parametrize("dtype", ["float32", "uint16", "uint8"])
def test_a_volume_reads_in_parts_as_it_reads_whole(tmp_path: Path, dtype: str) -> None:
    """Parts (z, y, x) of a tile volume, read from a memory map and scaled in float32, equal the
    whole volume read by nibabel at the same place."""
    volume = np.random.default_rng(1).uniform(-80.0, 85.0, (12, 16, 40)).astype(np.float32)  # (y, x, z)
    quantisation = None if dtype == "float32" else QUANTISATION[dtype]["O3D"]
    path = write_volume_nifti(tmp_path / "tile.nii", volume, (10.0, 10.0, 2.5), quantisation)
    whole = read_volume_nifti(path)[0].transpose(2, 0, 1)
    tile = TileVolume(path)
    assert tile.shape == (40, 12, 16)
    for part in [(slice(0, 40), slice(0, 12), slice(0, 16)), (slice(7, 31), slice(3, 10), slice(5, 6))]:
        found = tile.read(*part)
        assert found.dtype == np.float32 and found.flags.c_contiguous
        np.testing.assert_allclose(found, whole[part], rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize("dtype", ["float32", "uint8"])
def test_zarr_volumes_are_ome_zarr_stores_that_read_as_the_nifti_ones(simulated, tmp_path: Path, dtype: str) -> None:
    """``volume_format: zarr`` writes each volume as a complete one-level OME-Zarr (z, y, x) store
    in µm, cropped and typed as configured, reading back (through the stitcher's reader) as the
    NIfTI volume of the same tile; a re-run replaces the stores."""
    config, raw = simulated[TileSavingType.SPECTRAL]
    source = raw / _raw_name(TileSavingType.SPECTRAL)
    as_nifti = _project(config, tmp_path / "nifti", volume_dtype=dtype, depth=120)
    as_zarr = _project(config, tmp_path / "zarr", volume_dtype=dtype, depth=120, volume_format="zarr")
    TileProcessor(as_nifti).process(source, MOSAIC, IMAGE)
    first = TileProcessor(as_zarr).process(source, MOSAIC, IMAGE)
    again = TileProcessor(as_zarr).process(source, MOSAIC, IMAGE)
    assert _outputs_left(as_zarr) == sorted(again.paths) == sorted(first.paths)
    for name in ("dBI", "R3D", "O3D"):
        path = tile_output_paths(as_zarr, MOSAIC, IMAGE)[name]
        assert path.name == naming.processed_tile_name(MOSAIC, IMAGE, name, zarr=True) and path.is_dir()
        assert is_complete(path)
        pyramid = open_pyramid(path)
        assert len(pyramid.levels) == 1 and pyramid.dtype == np.dtype(dtype)
        blines, alines = first.result.volumes.dbi.shape[:2]
        assert pyramid.shape == (120, blines, alines)
        multiscale = json.loads((path / "zarr.json").read_text())["attributes"]["ome"]["multiscales"][0]
        assert [a["name"] for a in multiscale["axes"]] == ["z", "y", "x"]
        assert {a.get("unit") for a in multiscale["axes"]} == {"micrometer"}
        assert multiscale["datasets"][0]["coordinateTransformations"][0]["scale"] == [2.5, 10.0, 10.0]
        from_zarr = TileVolume(path)
        from_nifti = TileVolume(tile_output_paths(as_nifti, MOSAIC, IMAGE)[name])
        assert from_zarr.shape == from_nifti.shape
        part = (slice(10, 90), slice(1, blines - 1), slice(2, alines))
        np.testing.assert_array_equal(from_zarr.read(*part), from_nifti.read(*part))


def test_an_incomplete_zarr_volume_is_not_read(tmp_path: Path) -> None:
    volume = np.zeros((4, 5, 6), np.float32)
    path = psoct_outputs.write_volume_zarr(tmp_path / "v.ome.zarr", volume, (10.0, 10.0, 2.5))
    assert TileVolume(path).shape == (6, 4, 5)
    group = path / "zarr.json"
    group.write_text(group.read_text().replace('"complete": true', '"complete": false'))
    with pytest.raises(ValueError, match="not a complete OME-Zarr volume"):
        TileVolume(path)


def test_two_dimensional_enface_maps_and_no_volumes_when_configured(simulated, tmp_path: Path) -> None:
    config, raw = simulated[TileSavingType.COMPLEX]
    config = _project(config, tmp_path, save_volumes=False, save_enface_2d_as_3d=False)
    paths = reconstruct_tile_file(raw / _raw_name(TileSavingType.COMPLEX), config, MOSAIC, IMAGE)
    assert len(paths) == len(config.enface_modalities)
    image = nib.load(str(paths[0]))
    assert image.ndim == 2
    np.testing.assert_allclose(image.header.get_zooms(), (0.01, 0.01))


@pytest.mark.parametrize("volume_format", ["nifti", "zarr"])
def test_a_failed_write_leaves_no_file_of_the_tile(simulated, tmp_path: Path, monkeypatch, volume_format: str) -> None:
    config, raw = simulated[TileSavingType.SPECTRAL]
    config = _project(config, tmp_path, volume_format=volume_format)
    result = TileProcessor(config).process(raw / _raw_name(TileSavingType.SPECTRAL), MOSAIC, IMAGE).result
    assert len(_outputs_left(config)) == len(config.enface_modalities) + 3
    for path in _outputs_left(config):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()

    def disk_full(path, *args, **kwargs):
        if volume_format == "zarr":
            Path(path).mkdir()
            path = Path(path) / "zarr.json"
        Path(path).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(psoct_outputs, f"write_volume_{volume_format}", disk_full)
    with pytest.raises(OSError, match="No space left"):
        write_tile_outputs(result, config, MOSAIC, IMAGE)
    assert _outputs_left(config) == []


# --------------------------------------------------------------------------- bad input


def _assert_rejected(error: pytest.ExceptionInfo[RawTileError], path: Path, *found: str) -> None:
    message = str(error.value)
    assert str(path) in message and "expected" in message and "found" in message, message
    for text in found:
        assert text in message, message


def _copy_raw(simulated, fmt: TileSavingType, tmp_path: Path) -> tuple[PSOCTScanConfig, Path]:
    config, raw = simulated[fmt]
    target = tmp_path / _raw_name(fmt)
    shutil.copy(raw / _raw_name(fmt), target)
    return _project(config, tmp_path), target


@pytest.mark.parametrize("change", ["truncated", "oversized"])
def test_truncated_or_oversized_tiles_are_rejected(simulated, tmp_path: Path, change: str) -> None:
    config, path = _copy_raw(simulated, TileSavingType.SPECTRAL, tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:-1000] if change == "truncated" else data + b"\0" * 10)
    with pytest.raises(RawTileError) as error:
        reconstruct_tile_file(path, config, MOSAIC, IMAGE)
    _assert_rejected(error, path, f"{change} file", f"{len(data)} bytes")
    assert _outputs_left(config) == []


def test_a_wrong_header_is_rejected(simulated, tmp_path: Path) -> None:
    config, path = _copy_raw(simulated, TileSavingType.SPECTRAL, tmp_path)
    data = bytearray(path.read_bytes())
    data[344:348] = b"ni1\0"
    path.write_bytes(bytes(data))
    with pytest.raises(RawTileError) as error:
        reconstruct_tile_file(path, config, MOSAIC, IMAGE)
    _assert_rejected(error, path, "magic", "b'ni1'")
    assert _outputs_left(config) == []


@pytest.mark.parametrize("problem", ["missing", "a folder"])
def test_unreadable_files_are_rejected(simulated, tmp_path: Path, problem: str) -> None:
    config, path = _copy_raw(simulated, TileSavingType.SPECTRAL, tmp_path)
    path.unlink()
    if problem == "a folder":
        path.mkdir()
    with pytest.raises(RawTileError) as error:
        reconstruct_tile_file(path, config, MOSAIC, IMAGE)
    _assert_rejected(error, path, "no such file" if problem == "missing" else "unreadable")
    assert _outputs_left(config) == []


def test_a_file_of_another_format_than_the_config_says_is_rejected(simulated, tmp_path: Path) -> None:
    config, _ = _copy_raw(simulated, TileSavingType.SPECTRAL, tmp_path)
    _, raw12 = simulated[TileSavingType.SPECTRAL_12BIT]
    path = raw12 / _raw_name(TileSavingType.SPECTRAL_12BIT)
    with pytest.raises(RawTileError) as error:
        reconstruct_tile_file(path, config, MOSAIC, IMAGE)
    _assert_rejected(error, path, "tile_saving_type spectral", "spectral_12bit")
    assert _outputs_left(config) == []


def test_a_calibration_for_another_spectral_length_is_rejected(simulated, tmp_path: Path) -> None:
    config, path = _copy_raw(simulated, TileSavingType.SPECTRAL, tmp_path)
    calibration = config.project_base_path / naming.CALIBRATION_FILE
    mu = np.stack([np.linspace(100, 1900, 9), np.linspace(103, 1903, 9)], axis=1)
    write_calibration(calibration, mu, np.linspace(1240, 1360, 9))
    with pytest.raises(RawTileError) as error:
        reconstruct_tile_file(path, config, MOSAIC, IMAGE)
    _assert_rejected(error, calibration, "1..512", "100..1903")
    assert _outputs_left(config) == []


def test_a_calibration_whose_wavelengths_fall_with_pixel_index_is_rejected(simulated, tmp_path: Path) -> None:
    config, path = _copy_raw(simulated, TileSavingType.SPECTRAL, tmp_path)
    calibration = config.project_base_path / naming.CALIBRATION_FILE
    mu = np.stack([np.linspace(20, 490, 9), np.linspace(23, 493, 9)], axis=1)
    write_calibration(calibration, mu, np.linspace(1360, 1240, 9))
    with pytest.raises(RawTileError) as error:
        reconstruct_tile_file(path, config, MOSAIC, IMAGE)
    _assert_rejected(error, calibration, "increasing with pixel index")
    assert _outputs_left(config) == []


@pytest.mark.parametrize("fmt", [TileSavingType.SPECTRAL, TileSavingType.SPECTRAL_12BIT])
def test_saturated_spectra_are_rejected(simulated, tmp_path: Path, fmt: TileSavingType) -> None:
    config, path = _copy_raw(simulated, fmt, tmp_path)
    geometry = TileProcessor(config)._geometry(MOSAIC)
    spectra = read_spectral_tile(path, geometry).to_array()
    full = 4095 if fmt is TileSavingType.SPECTRAL_12BIT else 65535
    spectra[:, 1, ::3, 200:260] = full
    write_spectral_tile(path, spectra, packed_12bit=fmt is TileSavingType.SPECTRAL_12BIT)
    with pytest.raises(RawTileError) as error:
        reconstruct_tile_file(path, config, MOSAIC, IMAGE)
    _assert_rejected(error, path, f"full scale {full}", "camera 2's")
    assert _outputs_left(config) == []
    lenient = reconstruct_tile_file(path, config, MOSAIC, IMAGE, limits=InputLimits(max_saturated_fraction=0.1))
    assert len(lenient) == 9


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_complex_samples_are_rejected(simulated, tmp_path: Path, bad: float) -> None:
    config, path = _copy_raw(simulated, TileSavingType.COMPLEX, tmp_path)
    body = np.memmap(path, dtype="<f4", mode="r+", offset=NIFTI_HEADER_BYTES)
    body[1234] = bad
    body.flush()
    del body
    with pytest.raises(RawTileError) as error:
        reconstruct_tile_file(path, config, MOSAIC, IMAGE)
    _assert_rejected(error, path, "finite values", "NaN")
    assert _outputs_left(config) == []


def test_complex_writer_round_trip_feeds_the_entry_point(simulated, tmp_path: Path) -> None:
    """A complex tile written by our writer reconstructs like the simulator's."""
    config, raw = simulated[TileSavingType.COMPLEX]
    config = _project(config, tmp_path)
    first = TileProcessor(config).process(raw / _raw_name(TileSavingType.COMPLEX), MOSAIC, IMAGE).result
    j1 = np.ones((12, 12, 232), np.complex64)
    path = write_complex_tile(tmp_path / _raw_name(TileSavingType.COMPLEX), j1, 0.5 * j1)
    again = TileProcessor(config).process(path, MOSAIC, IMAGE).result
    assert again.volumes.dbi.shape == first.volumes.dbi.shape
    np.testing.assert_allclose(again.volumes.r3d, np.rad2deg(np.arctan(2.0)), atol=1e-3)
