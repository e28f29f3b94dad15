"""Stage tests on analytic inputs; simulator-based accuracy tests live in test_accuracy.py."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d

from opticstream_napari.processing.psoct import (
    Calibration,
    EnfaceParams,
    SpectralParams,
    SpectralReconstructor,
    Volumes,
    enface_maps,
    finish_tile,
    resolve_surface,
)
from opticstream_napari.processing.psoct.surface import gradient_surface, smooth_surface

LENGTH = 512


@pytest.fixture
def calibration() -> Calibration:
    mu = np.stack([np.linspace(20, 490, 9), np.linspace(23, 493, 9)], axis=1)
    return Calibration(mu, np.linspace(1240, 1360, 9), LENGTH)


def test_calibration_grid_and_resampling(calibration: Calibration) -> None:
    target = calibration.target_wavelengths_nm()
    k = 2 * np.pi / target
    assert np.all(np.diff(k) < 0)
    np.testing.assert_allclose(np.diff(k), np.diff(k)[0], rtol=1e-9)
    index, weight = calibration.resampling()
    lam = calibration.pixel_wavelengths_nm()
    for camera in range(2):
        rebuilt = lam[camera][index[camera]] * (1 - weight[camera]) + lam[camera][index[camera] + 1] * weight[camera]
        np.testing.assert_allclose(rebuilt, target, rtol=1e-6)


def test_calibration_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"mu of shape \(N, 2\)"):
        Calibration(np.zeros((3, 3)), np.zeros(3), LENGTH)
    with pytest.raises(ValueError, match=r"within 1\.\.512"):
        Calibration(np.full((2, 2), 600.0), np.ones(2), LENGTH)


def _reflector_spectra(calibration: Calibration, bin_index: int, alines: int) -> np.ndarray:
    """Both cameras see one reflector that should land in FFT bin ``bin_index``."""
    k = 2 * np.pi / calibration.target_wavelengths_nm()
    lam = calibration.pixel_wavelengths_nm()
    raw = np.empty((1, 2, alines, LENGTH))
    for camera in range(2):
        # fringe = cos(2π·bin·position of k in the uniform grid), sampled at each pixel's k
        pixel_k = 2 * np.pi / lam[camera]
        position = (pixel_k - k[0]) / (k[1] - k[0])
        fringe = np.cos(2 * np.pi * bin_index * position / LENGTH)
        amplitude = np.linspace(0.5, 1.5, alines)[:, None]
        raw[0, camera] = 2000 + 800 * amplitude * fringe
    return raw.round().astype(np.uint16)


def test_single_reflector_lands_in_its_depth_bin(calibration: Calibration) -> None:
    rec = SpectralReconstructor(calibration, LENGTH, alines=8, params=SpectralParams(autocorr_cut=24))
    raw = _reflector_spectra(calibration, bin_index=100, alines=8)
    j1, j2 = rec.complex(raw)
    assert j1.shape == (1, 8, LENGTH // 2 - 24)
    assert np.all(np.argmax(np.abs(j1[0]), axis=1) == 100 - 24)
    assert np.all(np.argmax(np.abs(j2[0]), axis=1) == 100 - 24)
    vols = rec.volumes(raw)
    assert np.all(np.argmax(vols.dbi[0], axis=1) == 76)
    reversed_z = SpectralReconstructor(calibration, LENGTH, 8, SpectralParams(flip_z=False))
    assert np.all(np.argmax(reversed_z.volumes(raw).dbi[0], axis=1) == rec.depth - 1 - 76)


def test_dispersion_of_zero_phase_changes_nothing(calibration: Calibration) -> None:
    raw = _reflector_spectra(calibration, 60, 8)
    plain = SpectralReconstructor(calibration, LENGTH, 8).volumes(raw)
    zero = SpectralReconstructor(calibration, LENGTH, 8, dispersion=np.zeros(2 * LENGTH)).volumes(raw)
    np.testing.assert_allclose(zero.dbi, plain.dbi, atol=0.02)


@pytest.mark.parametrize("cut", [0, 24])
def test_packed_transform_equals_one_transform_per_camera(calibration: Calibration, cut: int) -> None:
    """Without dispersion both cameras share one complex FFT; with a zero dispersion phase each
    camera has its own. Different signals per camera show any leak between them."""
    rng = np.random.default_rng(3)
    raw = rng.integers(1000, 3000, size=(2, 2, 8, LENGTH)).astype(np.uint16)
    params = SpectralParams(autocorr_cut=cut, phase_offset_deg=30.0)
    packed = SpectralReconstructor(calibration, LENGTH, 8, params)
    separate = SpectralReconstructor(calibration, LENGTH, 8, params, dispersion=np.zeros(LENGTH))
    for got, want in zip(packed.complex(raw), separate.complex(raw), strict=True):
        scale = np.abs(want).max()
        np.testing.assert_allclose(got, want, atol=2e-5 * scale)
    got, want = packed.volumes(raw), separate.volumes(raw)
    np.testing.assert_allclose(got.dbi, want.dbi, atol=1e-3)
    for name in ("r3d", "o3d"):
        difference = getattr(got, name) - getattr(want, name)
        wrapped = (difference + 90) % 180 - 90 if name == "o3d" else difference
        assert np.abs(wrapped).max() < 0.01, name


def test_reconstructor_rejects_bad_geometry(calibration: Calibration) -> None:
    with pytest.raises(ValueError, match="must fit"):
        SpectralReconstructor(calibration, LENGTH, 8, SpectralParams(depth=300))
    with pytest.raises(ValueError, match="multiple of 512"):
        SpectralReconstructor(calibration, LENGTH, 8, dispersion=np.zeros(100))
    rec = SpectralReconstructor(calibration, LENGTH, 8)
    with pytest.raises(ValueError, match="spectral block"):
        rec.volumes(np.zeros((1, 2, 9, LENGTH), np.uint16))
    with pytest.raises(ValueError, match="window"):
        SpectralReconstructor(calibration, LENGTH, 8, SpectralParams(window="kaiser"))


def _synthetic_volumes(surface: np.ndarray, depth: int = 200) -> tuple[Volumes, dict[str, np.ndarray]]:
    """Tissue below ``surface``: exponential decay, retardance growing linearly, fixed axis."""
    z = np.arange(depth)[None, None, :]
    below = z - surface[..., None]
    inside = below >= 0
    dbi = np.where(inside, 90 - 0.05 * below, 5.0).astype(np.float32)
    slope_deg = 0.12
    r3d = np.where(inside, np.minimum(slope_deg * (below + 1), 89), 0.0).astype(np.float32)
    theta = np.full(surface.shape, 85.0)
    theta[:, ::2] = -85.0
    o3d = np.broadcast_to(theta[..., None], dbi.shape).astype(np.float32).copy()
    truth = {"theta": theta, "biref": slope_deg / 360 * 1.3 / 2.5}
    return Volumes(dbi, r3d, o3d), truth


def test_gradient_surface_finds_the_step() -> None:
    surface = np.random.default_rng(0).integers(40, 120, size=(6, 7))
    vols, _ = _synthetic_volumes(surface)
    raw = gradient_surface(vols.dbi)
    assert np.max(np.abs(raw - surface)) <= 1
    smooth = smooth_surface(raw, vols.dbi.shape[-1])
    assert smooth.shape == surface.shape and smooth.dtype == np.int32


def _surface_as_the_original_finds_it(profile: np.ndarray) -> int:
    """Spec 4.3 step by step: smooth the signal part (σ 5, 2σ support, edges replicated), rise
    over a [5 | 5] window ('valid'), first sample after the largest rise; 0 without signal."""
    n = int(np.count_nonzero(profile > 0.01))
    if n <= 10:
        return 0
    smoothed = gaussian_filter1d(profile[:n].astype(np.float64), 5.0, mode="nearest", truncate=2.0)
    windows = np.lib.stride_tricks.sliding_window_view(smoothed, 10)
    rise = windows[:, 5:].mean(axis=1) - windows[:, :5].mean(axis=1)
    return int(np.argmax(rise)) + 5


def test_gradient_surface_is_the_original_method_on_noisy_profiles() -> None:
    rng = np.random.default_rng(3)
    surface = rng.integers(20, 150, size=(5, 40))
    vols, _ = _synthetic_volumes(surface, depth=260)
    noisy = vols.dbi + rng.normal(0, 4.0, vols.dbi.shape).astype(np.float32)
    noisy[..., 200:] = 0.0  # signal ends before the depth: only the first n samples count
    want = np.array([_surface_as_the_original_finds_it(p) for p in noisy.reshape(-1, 260)]).reshape(surface.shape)
    assert np.array_equal(gradient_surface(noisy), want)


def test_surface_specs() -> None:
    vols, _ = _synthetic_volumes(np.full((3, 4), 50))
    assert np.all(resolve_surface(7, vols.dbi) == 7)
    assert np.all(resolve_surface(10**6, vols.dbi) == vols.dbi.shape[-1] - 1)
    given = np.full((3, 4), 11)
    assert np.all(resolve_surface(given, vols.dbi) == 11)
    with pytest.raises(ValueError, match="shape"):
        resolve_surface(np.zeros((2, 2), int), vols.dbi)
    with pytest.raises(ValueError, match="gradient"):
        resolve_surface("laplace", vols.dbi)


def test_no_signal_gives_surface_zero() -> None:
    assert np.all(gradient_surface(np.zeros((2, 3, 100), np.float32)) == 0)


@pytest.mark.parametrize("method", ["legacy", "robust"])
def test_enface_maps_match_the_analytic_volume(method: str) -> None:
    surface = np.full((4, 6), 30)
    vols, truth = _synthetic_volumes(surface)
    params = EnfaceParams(offset=0, length=70, birefringence=method)
    maps = enface_maps(vols.dbi, vols.r3d, vols.o3d, surface.astype(np.int32), params)
    np.testing.assert_allclose(maps["aip"], 90 - 0.05 * 35, atol=1e-3)
    np.testing.assert_allclose(maps["mip"], 90, atol=1e-4)
    np.testing.assert_allclose(maps["ret"], 0.12 * 36, atol=1e-3)
    np.testing.assert_allclose(maps["ori"], truth["theta"], atol=1e-3)
    np.testing.assert_allclose(maps["biref"], truth["biref"], rtol=1e-4)
    assert np.all(maps["surf"] == 30)


def test_circular_mean_handles_the_wrap_and_plain_mean_does_not() -> None:
    surface = np.zeros((1, 2), np.int32)
    vols, _ = _synthetic_volumes(surface, depth=80)
    vols.o3d[0, 0, ::2] = 89.0
    vols.o3d[0, 0, 1::2] = -89.0
    circular = enface_maps(vols.dbi, vols.r3d, vols.o3d, surface, EnfaceParams())["ori"][0, 0]
    plain = enface_maps(vols.dbi, vols.r3d, vols.o3d, surface, EnfaceParams(orientation="mean"))["ori"][0, 0]
    assert abs(abs(circular) - 90) < 0.5
    assert abs(plain) < 5


def test_robust_birefringence_resists_an_outlier() -> None:
    surface = np.full((1, 1), 10, np.int32)
    vols, truth = _synthetic_volumes(surface, depth=120)
    vols.r3d[0, 0, 40:43] = 80.0
    legacy = enface_maps(vols.dbi, vols.r3d, vols.o3d, surface, EnfaceParams())["biref"][0, 0]
    robust = enface_maps(vols.dbi, vols.r3d, vols.o3d, surface, EnfaceParams(birefringence="robust"))["biref"][0, 0]
    assert abs(robust - truth["biref"]) < 0.05 * truth["biref"] < abs(legacy - truth["biref"])


def test_finish_tile_runs_every_stage() -> None:
    surface = np.full((3, 5), 25)
    vols, _ = _synthetic_volumes(surface)
    result = finish_tile(vols, EnfaceParams(), "gradient")
    assert set(result.enface) == {"aip", "mip", "ret", "ori", "biref", "surf"}
    assert np.max(np.abs(result.surface - 25)) <= 1
    with pytest.raises(ValueError, match="birefringence"):
        enface_maps(vols.dbi, vols.r3d, vols.o3d, result.surface, EnfaceParams(birefringence="fft"))


def test_stored_order_equals_pixel_order_and_saturation_is_counted(calibration: Calibration) -> None:
    """Camera 2 reversed as the instrument stores it gives the same volumes, without a copy."""
    raw = np.concatenate([_reflector_spectra(calibration, 90, 8), _reflector_spectra(calibration, 40, 8)])
    raw[1, 1, 2, 5:9] = 65535
    stored = raw.copy()
    stored[:, 1] = raw[:, 1, :, ::-1]
    rec = SpectralReconstructor(calibration, LENGTH, alines=8)
    counts = np.zeros((2, 2), np.int64)
    plain = rec.volumes(raw)
    reordered = rec.volumes(stored, stored_order=True, saturated=counts)
    for name in ("dbi", "r3d", "o3d"):
        np.testing.assert_array_equal(getattr(plain, name), getattr(reordered, name))
    np.testing.assert_array_equal(counts, [[0, 0], [0, 4]])
