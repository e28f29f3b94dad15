import numpy as np
import pytest

from opticstream_napari.processing.psoct import SpectralParams, complex_to_volumes
from opticstream_napari.processing.psoct.approx import ATAN_COEF, LOG2_COEF
from opticstream_napari.processing.psoct.column_median import (
    SAMPLE_PAIRS,
    STRIP,
    _bracket_median,
    column_median,
    median_of_columns,
    sample_rows,
)
from opticstream_napari.processing.psoct.median_network import batcher_network


def test_polynomial_approximations_are_accurate() -> None:
    t = np.linspace(0, 1, 10001)
    approx = t * np.polyval(ATAN_COEF[::-1], t * t)
    assert np.max(np.abs(approx - np.arctan(t))) < 1e-6
    m = np.linspace(1, 2, 10001)
    assert np.max(np.abs(np.polyval(LOG2_COEF[::-1], m - 1) - np.log2(m))) < 1e-6


@pytest.mark.parametrize("count", [1, 2, 3, 5, 16, 17, 64, 100, 350])
@pytest.mark.parametrize("values", ["continuous", "few-levels", "constant"])
def test_column_median_equals_numpy(count: int, values: str) -> None:
    """Exact, ties included; 300 columns = two full strips and one overlapping the one before."""
    rng = np.random.default_rng(count)
    rows = {
        "continuous": rng.standard_normal((count, 2 * STRIP + 44)),
        "few-levels": rng.integers(0, 4, (count, 2 * STRIP + 44)),
        "constant": np.full((count, 2 * STRIP + 44), 3.0),
    }[values].astype(np.float32)
    np.testing.assert_array_equal(median_of_columns(rows), np.median(rows, axis=0).astype(np.float32))


def test_column_median_of_selected_rows_and_narrow_arrays() -> None:
    rows = np.random.default_rng(5).standard_normal((40, STRIP + 8)).astype(np.float32)
    picked = np.arange(3, 40, 3)
    np.testing.assert_array_equal(median_of_columns(rows, picked), np.median(rows[picked], axis=0).astype(np.float32))
    narrow = rows[:, :10]
    np.testing.assert_array_equal(median_of_columns(narrow), np.median(narrow, axis=0).astype(np.float32))


@pytest.mark.parametrize("count", [349, 350])
def test_a_column_left_open_is_finished_from_its_bracket(count: int) -> None:
    """The few columns the counting passes leave open sort only the values between their pivots;
    a bracket that does not hold the middle ranks falls back to the whole column."""
    data = np.random.default_rng(count).standard_normal((count, 3)).astype(np.float32)
    rows = np.arange(count, dtype=np.int64)
    column = np.empty(count, dtype=np.float32)
    ordered = np.sort(data[:, 1])
    want = np.float32(np.median(data[:, 1]))
    middle = count // 2
    brackets = [
        (ordered[middle - 7], ordered[middle + 5]),  # both middle ranks inside
        (ordered[middle - 3], ordered[middle]),  # for 350 rows the upper middle value is the first above hi
        (ordered[middle + 2], ordered[middle + 9]),  # the middle ranks lie below lo: not a bracket
        (ordered[middle - 9], ordered[middle - 2]),  # ... or above hi
    ]
    for lo, hi in brackets:
        assert _bracket_median(data, rows, 1, lo, hi, column) == want


@pytest.mark.parametrize("seeded", [False, True])
def test_column_median_is_exact_when_the_sample_and_the_guess_miss(seeded: bool) -> None:
    """The sampled rows open the search and the previous B-line's median seeds it; both only steer
    it. Here every sampled row lies far above the median and the guess far below it."""
    count = 350
    data = np.random.default_rng(9).standard_normal((count, 2 * STRIP)).astype(np.float32)
    picked = np.arange(count, dtype=np.int64)
    sampled = sample_rows(picked)
    data[sampled] += 1000
    want = np.median(data, axis=0).astype(np.float32)
    out = np.empty(2 * STRIP, dtype=np.float32)
    guess = np.full(2 * STRIP, -50.0, dtype=np.float32)
    column_median(data, picked, sampled, SAMPLE_PAIRS, guess, seeded, out)
    np.testing.assert_array_equal(out, want)
    column_median(data, picked, sampled, SAMPLE_PAIRS, want, seeded, out)  # a perfect guess
    np.testing.assert_array_equal(out, want)


def test_batcher_network_sorts_and_rejects_bad_sizes() -> None:
    values = np.random.default_rng(0).permutation(32).astype(float)
    for low, high in batcher_network(32):
        if values[low] > values[high]:
            values[low], values[high] = values[high], values[low]
    assert list(values) == list(range(32))
    with pytest.raises(ValueError, match="power of two"):
        batcher_network(12)


def test_volumes_from_known_jones_vectors() -> None:
    rng = np.random.default_rng(1)
    shape = (3, 4, 50)
    intensity = rng.uniform(1e3, 1e6, shape)
    delta = rng.uniform(0, np.pi / 2, shape)
    theta = rng.uniform(-90, 90, shape)
    offset = 100.0
    psi = rng.uniform(-np.pi, np.pi, shape)
    j1 = np.sqrt(intensity) * np.sin(delta) * np.exp(1j * psi)
    j2 = np.sqrt(intensity) * np.cos(delta) * np.exp(1j * (psi - 2 * np.deg2rad(theta) + 2 * np.deg2rad(offset)))
    vols = complex_to_volumes(j1, j2, SpectralParams(phase_offset_deg=offset))
    np.testing.assert_allclose(vols.dbi, 10 * np.log10(intensity), atol=1e-3)
    np.testing.assert_allclose(vols.r3d, np.rad2deg(delta), atol=1e-3)
    wrapped = (vols.o3d - theta + 90) % 180 - 90
    np.testing.assert_allclose(wrapped, 0, atol=1e-3)
    assert vols.o3d.min() >= -90 and vols.o3d.max() <= 90
    flipped = complex_to_volumes(j1, j2, SpectralParams(phase_offset_deg=offset, flip_phase=True))
    assert not np.allclose(flipped.o3d, vols.o3d, atol=1)


def test_volumes_reject_mismatched_inputs() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        complex_to_volumes(np.zeros((2, 3), complex), np.zeros((3, 3), complex))
