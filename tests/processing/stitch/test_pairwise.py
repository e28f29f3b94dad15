import numpy as np
import pytest

from opticstream_napari.processing.stitch.pairwise import PhaseCorrelator, register_pair


@pytest.fixture(scope="module")
def canvas(synthetic):
    return synthetic.TexturedCanvas(512, seed=3)


def _pairs(canvas, shape, count, spread, noise, seed):
    """Strip pairs with b[y, x] = a[y + dy, x + dx] for random real (dy, dx)."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        dy, dx = rng.uniform(-spread, spread, 2)
        y0, x0 = rng.uniform(0, 200, 2)
        a = canvas.tile(y0, x0, shape) + noise * rng.standard_normal(shape).astype(np.float32)
        b = canvas.tile(y0 + dy, x0 + dx, shape) + noise * rng.standard_normal(shape).astype(
            np.float32
        )
        yield a, b, dy, dx


@pytest.mark.parametrize("shape", [(256, 40), (40, 256), (128, 24)])
def test_subpixel_error_is_well_under_a_tenth_of_a_pixel(canvas, shape) -> None:
    correlator = PhaseCorrelator(shape)
    errors = []
    for a, b, dy, dx in _pairs(canvas, shape, 12, 5.0, 0.05, seed=sum(shape)):
        shift = correlator.register(a, b)
        assert shift.refined and shift.ncc > 0.9
        errors.append((shift.dy - dy, shift.dx - dx))
    errors = np.abs(errors)
    assert errors.max() < 0.1
    assert np.sqrt((errors**2).mean()) < 0.05


def test_noisy_strips_stay_accurate(canvas) -> None:
    correlator = PhaseCorrelator((200, 48))
    errors = [
        (s.dy - dy, s.dx - dx)
        for a, b, dy, dx in _pairs(canvas, (200, 48), 10, 4.0, 0.5, seed=7)
        for s in [correlator.register(a, b)]
    ]
    assert np.sqrt(np.mean(np.square(errors))) < 0.1


def test_ncc_picks_the_true_shift_among_the_wrap_around_candidates(canvas) -> None:
    # 58 px down a 128 px strip: the circular peak also reads as -70, which would keep 45 %
    # of the strip overlapped; only +58 matches.
    a = canvas.tile(10.0, 10.0, (128, 48))
    b = canvas.tile(68.3, 7.6, (128, 48))
    shift = PhaseCorrelator((128, 48)).register(a, b)
    assert shift.dy == pytest.approx(58.3, abs=0.05)
    assert shift.dx == pytest.approx(-2.4, abs=0.05)
    assert shift.overlap == pytest.approx(70 * 46 / (128 * 48), abs=0.02)


def test_max_shift_bounds_the_candidates(canvas) -> None:
    a = canvas.tile(10.0, 10.0, (128, 48))
    b = canvas.tile(80.0, 10.0, (128, 48))
    shift = PhaseCorrelator((128, 48), max_shift=(20, 20)).register(a, b)
    assert abs(shift.dy) <= 20 and shift.ncc < 0.5


def test_textureless_and_unrelated_strips_have_no_confidence(canvas) -> None:
    flat = np.full((128, 32), 7.0, dtype=np.float32)
    textured = canvas.tile(5.0, 5.0, (128, 32))
    shift = register_pair(flat, textured)
    assert shift.ncc == 0.0 and not shift.refined
    rng = np.random.default_rng(0)
    noise_a, noise_b = rng.standard_normal((2, 128, 32)).astype(np.float32)
    assert register_pair(noise_a, noise_b).ncc < 0.2


def test_non_finite_samples_do_not_break_registration(canvas) -> None:
    a = canvas.tile(30.0, 40.0, (160, 40))
    b = canvas.tile(31.25, 38.5, (160, 40))
    a[5:9, 3:7] = np.nan
    b[100, 20] = np.inf
    shift = register_pair(a, b)
    assert (shift.dy, shift.dx) == pytest.approx((1.25, -1.5), abs=0.05)
    assert np.isnan(a[5, 3]), "the caller's strip is not modified"


def test_integer_input_and_the_per_thread_cache(canvas) -> None:
    a = canvas.tile(0.0, 0.0, (96, 32))
    b = canvas.tile(2.0, 1.0, (96, 32))
    to_u16 = lambda s: np.round(1000 + 100 * s).astype(np.uint16)  # noqa: E731
    first = register_pair(to_u16(a), to_u16(b))
    assert (first.dy, first.dx) == pytest.approx((2.0, 1.0), abs=0.05)
    assert register_pair(to_u16(a), to_u16(b)) == first


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 8"):
        PhaseCorrelator((100, 5))
    correlator = PhaseCorrelator((64, 16))
    with pytest.raises(ValueError, match=r"\(64, 16\)"):
        correlator.register(np.zeros((64, 16)), np.zeros((64, 17)))
    with pytest.raises(ValueError, match="min_overlap"):
        PhaseCorrelator((64, 16), min_overlap=0)
