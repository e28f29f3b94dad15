"""The PS-OCT simulator writes what the instrument writes, and a plain reading of spec 4.1-4.4
recovers the ground truth it records."""

import json
import re
import threading
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d

from opticstream_napari import naming
from opticstream_napari.config import PSOCTScanConfig, TileSavingType
from opticstream_napari.io.psoct_raw import (
    Calibration,
    TileGeometry,
    full_depth,
    read_calibration,
    read_complex_tile,
    read_dispersion,
    read_spectral_tile,
)
from opticstream_napari.simulate.live import Pace
from opticstream_napari.simulate.psoct import (
    CANVAS_MAPS,
    TILE_MAPS,
    PSOCTGroundTruth,
    iter_simulate_psoct,
    plan_psoct_acquisition,
    psoct_preset,
    raw_tile_names,
    simulate_psoct,
)
from opticstream_napari.simulate.psoct_physics import MedianGuard

# --------------------------------------------------------------------------- reference reconstruction
# A plain numpy reading of spec 4.1 (spectral -> complex), 4.2 (volumes), a gradient surface
# and the 4.4 en-face maps; independent of the simulator's own code paths.


def _lerp(spectra: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    order = np.argsort(source)
    source, spectra = source[order], spectra[..., order]
    i = np.clip(np.searchsorted(source, target, side="right") - 1, 0, source.size - 2)
    f = (target - source[i]) / (source[i + 1] - source[i])
    return spectra[..., i] * (1 - f) + spectra[..., i + 1] * f


def spectral_to_complex(
    data: np.ndarray, calibration: Calibration, cut: int, dispersion: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(Bline, 2, Aline, L) counts -> J1, J2 as (Aline, Bline, depth)."""
    length = data.shape[-1]
    wavelengths = calibration.pixel_wavelengths_nm()
    target = calibration.target_wavelengths_nm()
    out = []
    for camera in range(2):
        s = data[:, camera].astype(np.float64)
        s = s - s.mean(axis=1, keepdims=True)
        s = _lerp(s, wavelengths[camera], target)
        s = s - np.median(s, axis=1, keepdims=True)
        j = np.fft.fft(s * np.exp(-1j * dispersion), axis=-1)[..., cut : length // 2]
        out.append(j.transpose(1, 0, 2))
    return out[0], out[1]


def enface(j1: np.ndarray, j2: np.ndarray, offset_deg: float, window: int = 70) -> dict[str, np.ndarray]:
    dbi = 10 * np.log10(np.maximum(np.abs(j1) ** 2 + np.abs(j2) ** 2, np.finfo(np.float32).eps))
    r3d = np.degrees(np.arctan(np.abs(j1) / np.maximum(np.abs(j2), 1e-30)))
    phase = np.angle(np.exp(1j * (np.angle(j1) - np.angle(j2) + 2 * np.deg2rad(offset_deg))))
    o3d = phase / (2 * np.pi) * 180
    surface = np.argmax(np.diff(gaussian_filter1d(dbi, 1.0, axis=-1), axis=-1), axis=-1) + 1
    z = np.clip(surface[..., None] + np.arange(window + 1), 0, dbi.shape[-1] - 1)

    def take(volume: np.ndarray) -> np.ndarray:
        return np.take_along_axis(volume, z, axis=-1)

    o = np.deg2rad(take(o3d))
    depth_um = 2.5 * np.arange(window + 1)
    opd = take(r3d) / 360 * 1.3
    centred = depth_um - depth_um.mean()
    stokes = (take(j1) * np.conj(take(j2))).sum(axis=-1) * np.exp(2j * np.deg2rad(offset_deg))
    return {
        "surface": surface,
        "aip": take(dbi).mean(axis=-1),
        "mip": take(dbi).max(axis=-1),
        "ret": take(r3d).mean(axis=-1),
        "ori": np.degrees(0.5 * np.arctan2(np.sin(2 * o).sum(-1), np.cos(2 * o).sum(-1))),
        "ori_weighted": np.degrees(np.angle(stokes)) / 2,
        "biref": ((opd - opd.mean(-1, keepdims=True)) * centred).sum(-1) / (centred**2).sum(),
    }


def _angle_error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs((a - b + 90) % 180 - 90)


# --------------------------------------------------------------------------- fixtures


def _simulate(root: Path, kind: TileSavingType, **kwargs: object) -> tuple[PSOCTScanConfig, Path, PSOCTGroundTruth]:
    config = psoct_preset(root / "project", "tiny", kind)
    raw = root / "raw"
    return config, raw, simulate_psoct(config, raw, **kwargs)


@pytest.fixture(scope="module")
def spectral_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[PSOCTScanConfig, Path, PSOCTGroundTruth]:
    return _simulate(tmp_path_factory.mktemp("spectral"), TileSavingType.SPECTRAL)


@pytest.fixture(scope="module")
def raw12_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[PSOCTScanConfig, Path, PSOCTGroundTruth]:
    return _simulate(tmp_path_factory.mktemp("raw12"), TileSavingType.SPECTRAL_12BIT)


def _geometry(config: PSOCTScanConfig, truth: PSOCTGroundTruth, mosaic: int) -> TileGeometry:
    width, height = truth.mosaic(mosaic).tile_size
    acq = config.acquisition
    return TileGeometry(width, height, acq.spectral_length,
                        full_depth(acq.spectral_length, config.processing.autocorr_cut))


def _reconstruct(config: PSOCTScanConfig, raw: Path, truth: PSOCTGroundTruth, mosaic: int) -> list[dict]:
    geometry = _geometry(config, truth, mosaic)
    length = config.acquisition.spectral_length
    calibration = read_calibration(config.project_base_path / naming.CALIBRATION_FILE, length)
    dispersion = read_dispersion(config.processing.disp_comp_file, length)
    maps = []
    for tile in truth.mosaic(mosaic).tiles:
        path = raw / raw_tile_names(config, mosaic, tile.image)[0]
        if config.acquisition.tile_saving_type is TileSavingType.COMPLEX:
            complex_tile = read_complex_tile(path, geometry)
            j1, j2 = complex_tile.j1, complex_tile.j2
        else:
            data = read_spectral_tile(path, geometry).to_array()
            j1, j2 = spectral_to_complex(data, calibration, config.processing.autocorr_cut, dispersion)
        maps.append(enface(j1, j2, config.processing.phase_offset_deg))
    return maps


def _check_recovery(config: PSOCTScanConfig, raw: Path, truth: PSOCTGroundTruth, mosaic: int) -> None:
    recovered = _reconstruct(config, raw, truth, mosaic)
    expected = {name: truth.tile_maps(mosaic, name) for name in TILE_MAPS}
    spec_ori = []
    for index, got in enumerate(recovered):
        want = {name: values[index] for name, values in expected.items()}
        core, tissue = want["tissue"] > 0.99, want["tissue"] >= 0.5
        known = ~np.isnan(want["aip"])
        assert np.abs(got["surface"] - want["surface"])[known].max() <= 1
        assert np.abs(got["aip"] - want["aip"])[known].max() < 0.5
        # Outside tissue J1 is noise alone, which biases atan(|J1|/|J2|) upwards by a degree or two.
        assert np.abs(got["ret"] - want["ret"])[tissue].max(initial=0) < 1.0
        if core.any():
            assert _angle_error(got["ori_weighted"], want["ori"])[core].max() < 1.0
            assert np.abs(got["biref"] / want["biref"] - 1)[core].max() < 0.05
            spec_ori.append(_angle_error(got["ori"], want["ori"])[core])
    spec_ori = np.concatenate(spec_ori)
    # The spec's unweighted circular mean is limited by 12-bit quantisation near the surface,
    # where retardance is ~0: a few pixels of a tiny tile may exceed 1°.
    assert spec_ori.mean() < 0.3 and np.percentile(spec_ori, 98) < 1.0 and spec_ori.max() < 2.0


# --------------------------------------------------------------------------- raw files


def test_raw_names_parse_back_to_their_identities(spectral_run: tuple) -> None:
    config, raw, truth = spectral_run
    files = sorted(p for p in raw.iterdir() if p.is_file())
    expected = {name for plan in truth.mosaics for tile in plan.tiles
                for name in raw_tile_names(config, plan.mosaic, tile.image)}
    assert {p.name for p in files} == expected
    for path in files:
        assert path.stat().st_size >= naming.PSOCT_MIN_RAW_BYTES
        parsed = naming.parse_psoct_raw_tile(path.name)
        assert parsed.kind is naming.RawTileKind.SPECTRAL
        identity = parsed.identity(config.project_name, config.mosaics_per_slice, config.acquisition.grid_size_y)
        plan = truth.mosaic(parsed.mosaic)
        tile = plan.tiles[parsed.image - 1]
        assert (identity.slice, identity.mosaic, identity.tile) == (plan.slice_id, plan.mosaic, tile.image)
        assert identity.batch == tile.column + 1


def test_spectral_files_are_nifti_with_the_tile_geometry(spectral_run: tuple) -> None:
    config, raw, truth = spectral_run
    for plan in truth.mosaics:
        for tile in plan.tiles:
            image = nib.load(raw / raw_tile_names(config, plan.mosaic, tile.image)[0])
            assert image.shape == (config.acquisition.spectral_length, plan.tile_size[0], 2, plan.tile_size[1])
            assert image.get_data_dtype() == np.uint16


def test_assets_are_written_where_the_config_looks(spectral_run: tuple) -> None:
    config, _, _ = spectral_run
    length = config.acquisition.spectral_length
    calibration = read_calibration(config.project_base_path / naming.CALIBRATION_FILE, length)
    assert calibration.mu.shape == (9, 2)
    assert config.processing.disp_comp_file == config.project_base_path / naming.DISPERSION_FILE
    assert not read_dispersion(config.processing.disp_comp_file, length).any()


def test_12bit_and_16bit_runs_hold_the_same_numbers(spectral_run: tuple, raw12_run: tuple) -> None:
    config16, raw16, truth = spectral_run
    config12, raw12, _ = raw12_run
    plan = truth.mosaics[1]
    geometry = _geometry(config16, truth, plan.mosaic)
    for tile in plan.tiles[:2]:
        a = read_spectral_tile(raw16 / raw_tile_names(config16, plan.mosaic, tile.image)[0], geometry)
        b = read_spectral_tile(raw12 / raw_tile_names(config12, plan.mosaic, tile.image)[0], geometry)
        assert b.path.suffix == ".raw"
        np.testing.assert_array_equal(a.to_array(), b.to_array())
        assert a.to_array().max() <= 4095


# --------------------------------------------------------------------------- ground truth


def test_ground_truth_files_are_consistent(spectral_run: tuple) -> None:
    config, raw, truth = spectral_run
    folder = raw / naming.GROUND_TRUTH_FOLDER
    assert truth.folder == folder
    assert [p.mosaic for p in truth.mosaics] == [1, 2]
    acq = config.acquisition
    for plan, bucket, columns in zip(truth.mosaics, ("normal", "tilted"), (2, 3), strict=True):
        assert (plan.bucket, plan.acquisition, plan.grid.columns, plan.grid.rows) == (bucket, bucket, columns, 3)
        width, height = plan.tile_size
        assert width == acq.tile_size_x(bucket) and height == acq.tile_size_y
        step = width * 0.8, height * 0.8
        assert plan.tiles[0].row == 2 and plan.tiles[0].column == 0  # snake by columns, up & right
        for tile in plan.tiles:
            assert tile.nominal == pytest.approx((tile.column * step[0], tile.row * step[1]))
            assert max(abs(t - n) for t, n in zip(tile.true, tile.nominal, strict=True)) <= 1.0
        shifts = np.array([np.subtract(t.true, t.nominal) for t in plan.tiles])
        assert np.abs(shifts - np.round(shifts)).max() > 0.01  # sub-pixel jitter
        for name in CANVAS_MAPS:
            assert truth.canvas(plan.mosaic, name).shape == plan.canvas_shape
        for name in TILE_MAPS:
            assert truth.tile_maps(plan.mosaic, name).shape == (len(plan.tiles), width, height)
        mask = truth.canvas(plan.mosaic, "mask")
        assert 0.2 < mask.mean() < 0.9
        for registered in (False, True):
            text = (folder / "slice-01" / naming.tile_configuration_name(bucket, registered=registered)).read_text()
            rows = re.findall(r"^(\S+); ; \(([-\d.]+), ([-\d.]+)\)$", text, re.MULTILINE)
            assert [r[0] for r in rows] == [naming.processed_tile_name(plan.mosaic, t.image, "aip") for t in plan.tiles]
            positions = [t.true if registered else t.nominal for t in plan.tiles]
            np.testing.assert_allclose([(float(x), float(y)) for _, x, y in rows], positions, atol=1e-6)
    curvature = json.loads((folder / "field_curvature.json").read_text())["buckets"]
    assert set(curvature) == {"normal", "tilted"} == set(truth.curvature)
    manifest = truth.manifest
    assert manifest["scale_factor"] == 1.0 and manifest["tile_saving_type"] == "spectral"
    for entry in manifest["mosaics"]:
        for relative in [*entry["canvases"].values(), *entry["tiles"].values(), entry["ideal"], entry["registered"]]:
            assert (folder / relative).is_file()


def test_tile_truth_matches_the_canvas_up_to_field_curvature(spectral_run: tuple) -> None:
    _, _, truth = spectral_run
    plan = truth.mosaics[0]
    canvas = truth.canvas(plan.mosaic, "ret")
    tiles = truth.tile_maps(plan.mosaic, "ret")
    guard = MedianGuard.for_alines(plan.tile_size[0])
    for index, tile in enumerate(plan.tiles):
        x, y = (round(v) for v in tile.true)
        if min(x, y) < 0 or x + plan.tile_size[0] > canvas.shape[0] or y + plan.tile_size[1] > canvas.shape[1]:
            continue
        patch = canvas[x : x + plan.tile_size[0], y : y + plan.tile_size[1]]
        keep = np.ones(plan.tile_size[0], bool)
        keep[guard.target] = False
        assert np.corrcoef(patch[keep].ravel(), tiles[index][keep].ravel())[0, 1] > 0.8


# --------------------------------------------------------------------------- recovery


@pytest.mark.parametrize("mosaic", [1, 2], ids=["normal", "tilted"])
def test_reference_reconstruction_recovers_spectral_truth(spectral_run: tuple, mosaic: int) -> None:
    _check_recovery(*spectral_run, mosaic)


@pytest.mark.parametrize("mosaic", [1, 2], ids=["normal", "tilted"])
def test_reference_reconstruction_recovers_12bit_truth(raw12_run: tuple, mosaic: int) -> None:
    _check_recovery(*raw12_run, mosaic)


def test_tissue_and_background_aip_sit_either_side_of_the_thresholds(spectral_run: tuple) -> None:
    config, raw, truth = spectral_run
    for plan in truth.mosaics:
        aip = np.stack([m["aip"] for m in _reconstruct(config, raw, truth, plan.mosaic)])
        tissue = truth.tile_maps(plan.mosaic, "tissue")
        assert (tissue > 0.99).sum() > 50 and (tissue < 0.01).sum() > 50
        assert aip[tissue > 0.99].min() > 60
        assert aip[tissue < 0.01].max() < 55


def test_complex_tiles_and_quadratic_dispersion(tmp_path: Path) -> None:
    config, raw, truth = _simulate(tmp_path / "c", TileSavingType.COMPLEX, slices=1, seed=3)
    assert {naming.parse_psoct_raw_tile(p.name).kind for p in raw.iterdir() if p.is_file()} == {
        naming.RawTileKind.COMPLEX
    }
    _check_recovery(config, raw, truth, 1)
    config, raw, truth = _simulate(tmp_path / "d", TileSavingType.SPECTRAL, seed=3, dispersion_edge_radians=8.0)
    assert np.ptp(read_dispersion(config.processing.disp_comp_file, 512)) == pytest.approx(8.0, rel=1e-3)
    _check_recovery(config, raw, truth, 1)


def test_odd_a_line_counts_leave_one_blank_column(tmp_path: Path) -> None:
    config = psoct_preset(tmp_path / "project", "tiny")
    config.acquisition.tile_size_x_tilted = 11
    truth = simulate_psoct(config, tmp_path / "raw")
    blank = MedianGuard.for_alines(11).target
    ret = truth.tile_maps(2, "ret")
    assert np.isnan(ret[:, blank]).all() and not np.isnan(np.delete(ret, blank, axis=1)).any()
    recovered = _reconstruct(config, tmp_path / "raw", truth, 2)
    for index, got in enumerate(recovered):
        tissue = truth.tile_maps(2, "tissue")[index] >= 0.5
        tissue[blank] = False
        assert np.abs(got["ret"] - ret[index])[tissue].max(initial=0) < 1.0


def test_slices_differ_slightly(tmp_path: Path) -> None:
    config = psoct_preset(tmp_path / "project", "tiny", TileSavingType.COMPLEX)
    truth = simulate_psoct(config, tmp_path / "raw", slices=2)
    assert [(p.slice_id, p.mosaic) for p in truth.mosaics] == [(1, 1), (1, 2), (2, 3), (2, 4)]
    first, second = truth.canvas(1, "aip"), truth.canvas(3, "aip")
    assert not np.array_equal(first, second)
    assert np.corrcoef(first.ravel(), second.ravel())[0, 1] > 0.9


# --------------------------------------------------------------------------- live mode and options


def test_live_mode_grows_files_and_yields_each_once_complete(tmp_path: Path) -> None:
    config = psoct_preset(tmp_path / "project", "tiny")
    raw = tmp_path / "raw"
    stop = threading.Event()
    yielded: list[tuple[str, int]] = []
    seen: dict[str, set[int]] = {}

    def run() -> None:
        for path in iter_simulate_psoct(config, raw, pace=Pace(0.4, 4), stop=stop):
            yielded.append((path.name, path.stat().st_size))
            if len(yielded) == 2:
                stop.set()

    worker = threading.Thread(target=run)
    worker.start()
    while worker.is_alive():
        for path in raw.glob("mosaic_*"):
            seen.setdefault(path.name, set()).add(path.stat().st_size)
        time.sleep(0.005)
    worker.join()
    names = [raw_tile_names(config, 1, image)[0] for image in (1, 2)]
    assert [name for name, _ in yielded] == names
    final = dict(yielded)
    assert all(size == (raw / name).stat().st_size for name, size in final.items())
    assert any(0 < size < final[name] for name in names for size in seen.get(name, ()))
    assert len([p for p in raw.iterdir() if p.is_file()]) == 2


def test_presets_and_unsupported_types(tmp_path: Path) -> None:
    for size in ("tiny", "demo", "large"):
        config = psoct_preset(tmp_path, size)
        assert config.processing.disp_comp_file == tmp_path / naming.DISPERSION_FILE
    large = psoct_preset(tmp_path, "large").acquisition
    assert large.tile_size_y * 2 * large.tile_size_x_normal * large.spectral_length * 2 > 0.9e9
    config = psoct_preset(tmp_path, "tiny", TileSavingType.PROCESSED_WITH_SPECTRAL)
    with pytest.raises(ValueError, match="processed_with_spectral"):
        next(iter_simulate_psoct(config, tmp_path / "raw"))
    config = psoct_preset(tmp_path, "tiny")
    config.processing.disp_comp_file = None
    with pytest.raises(ValueError, match="disp_comp_file"):
        next(iter_simulate_psoct(config, tmp_path / "raw", dispersion_edge_radians=1.0))


def test_three_mosaics_per_slice_plan(tmp_path: Path) -> None:
    config = psoct_preset(tmp_path, "tiny")
    config.mosaics_per_slice = 3
    plans = plan_psoct_acquisition(config, slices=1, seed=0, jitter_px=0.5)
    assert [(p.acquisition, p.bucket, p.tilt_deg) for p in plans] == [
        ("normal", "normal", 0.0), ("tiltPos", "normal", 15.0), ("tiltNeg", "normal", -15.0)
    ]
