"""Exact median over rows, for every column, by counting instead of sorting.

The DC estimate is, for every k sample, the median over a B-line's A-lines. A per-column
quickselect is scalar and branchy; a sorting network over 350 rows needs ~8000 compare-exchanges
of whole rows. Counting is cheaper: a pass that counts, per column, the values below a few pivots
is a compare and an add per value over contiguous memory, and vectorises across columns.

Per strip of ``STRIP`` columns (cache-resident), each counting pass places three pivots around
the median's rank (first from a guess, the previous B-line's median, or from a sorted sample of
16 rows; then by interpolation inside each column's bracket, which the sample's extremes open)
until a pivot has between ``hi_rank - REGISTERS + 1`` and ``lo_rank`` values below it. One last
pass keeps, per column, the ``REGISTERS`` smallest values at or above that pivot, which include
the middle order statistics. A pass costs the whole strip, so the last few open columns
(``SCALAR_COLUMNS``), and columns whose ties defeat the search (equal values across the middle
ranks), take a scalar median of their own instead. For finite data (resampled spectra are) the
result equals ``np.median(data[rows], axis=0)`` exactly; the guess and the sample change only
how many passes it takes.
"""

from __future__ import annotations

import numba as nb
import numpy as np
import numpy.typing as npt

from opticstream_napari.processing.psoct.median_network import batcher_network

STRIP = 128
SAMPLE = 16
REGISTERS = 6  # _smallest_at_or_above keeps them in six named registers
PIVOTS = 3
MAX_PASSES = 10
SCALAR_COLUMNS = 8  # a strip with this few open columns finishes them one by one, not by another pass
SAMPLE_PAIRS = np.array(batcher_network(SAMPLE), dtype=np.int32)
_BIG = np.float32(np.finfo(np.float32).max)
_ONE = np.float32(1.0)
# Rows of the per-strip float32 state array.
_LO, _HI = 0, 1
_STATE_ROWS = 2


@nb.njit(inline="always")
def _four_rows(data, rows, i, k0):  # pragma: no cover - numba
    """The strip's part of rows ``rows[i:i + 4]``: the passes handle four rows per step."""
    return (data[rows[i], k0:k0 + STRIP], data[rows[i + 1], k0:k0 + STRIP],
            data[rows[i + 2], k0:k0 + STRIP], data[rows[i + 3], k0:k0 + STRIP])


@nb.njit(nogil=True, cache=True)
def _count(data, rows, k0, pivots, counts):  # pragma: no cover - numba
    """counts[p, j] = #(data[rows, k0 + j] < pivots[p, j]), as float32.

    Float tallies let a compare feed a masked add (two instructions; an integer tally needs a
    third to turn the mask into a vector). Four rows per step, so each tally is loaded and
    stored once per four compares.
    """
    counts[:] = 0
    n = rows.size
    full = n - n % 4
    for i in range(0, full, 4):
        r0, r1, r2, r3 = _four_rows(data, rows, i, k0)
        for p in range(PIVOTS):
            pivot = pivots[p]
            count = counts[p]
            for j in range(STRIP):
                q = pivot[j]
                c = count[j]
                c = c + _ONE if r0[j] < q else c
                c = c + _ONE if r1[j] < q else c
                c = c + _ONE if r2[j] < q else c
                c = c + _ONE if r3[j] < q else c
                count[j] = c
    for i in range(full, n):
        row = data[rows[i], k0:k0 + STRIP]
        for p in range(PIVOTS):
            for j in range(STRIP):
                c = counts[p, j]
                counts[p, j] = c + _ONE if row[j] < pivots[p, j] else c


@nb.njit(nogil=True, cache=True)
def _smallest_at_or_above(data, rows, k0, threshold, regs):  # pragma: no cover - numba
    """regs[:, j] = the REGISTERS smallest of data[rows, k0 + j] that are >= threshold[j], sorted.

    Four rows are inserted per load and store of the kept values, which stay in registers.
    """
    regs[:] = _BIG
    n = rows.size
    full = n - n % 4
    for i in range(0, full, 4):
        r0, r1, r2, r3 = _four_rows(data, rows, i, k0)
        for j in range(STRIP):
            t = threshold[j]
            a0 = regs[0, j]
            a1 = regs[1, j]
            a2 = regs[2, j]
            a3 = regs[3, j]
            a4 = regs[4, j]
            a5 = regs[5, j]
            for v in (r0[j], r1[j], r2[j], r3[j]):
                v = v if v >= t else _BIG
                a0, v = min(a0, v), max(a0, v)
                a1, v = min(a1, v), max(a1, v)
                a2, v = min(a2, v), max(a2, v)
                a3, v = min(a3, v), max(a3, v)
                a4, v = min(a4, v), max(a4, v)
                a5 = min(a5, v)
            regs[0, j] = a0
            regs[1, j] = a1
            regs[2, j] = a2
            regs[3, j] = a3
            regs[4, j] = a4
            regs[5, j] = a5
    for i in range(full, n):
        row = data[rows[i], k0:k0 + STRIP]
        for j in range(STRIP):
            v = row[j] if row[j] >= threshold[j] else _BIG
            for r in range(REGISTERS):
                a = regs[r, j]
                regs[r, j] = min(a, v)
                v = max(a, v)


@nb.njit(nogil=True, cache=True)
def _update(pivots, counts, window_lo, window_hi, state, bracket_counts, found, found_count):  # pragma: no cover
    """Narrow each open column's bracket [lo, hi) with the counted pivots; return columns still open."""
    open_columns = 0
    for j in range(STRIP):
        if found[j]:
            continue
        for p in range(PIVOTS):
            c = np.int32(counts[p, j])
            value = pivots[p, j]
            if window_lo <= c <= window_hi:
                found[j] = True
                state[_LO, j] = value
                found_count[j] = c
                break
            if c < window_lo:
                if value > state[_LO, j]:
                    state[_LO, j] = value
                    bracket_counts[0, j] = c
            elif value < state[_HI, j]:
                state[_HI, j] = value
                bracket_counts[1, j] = c
        if not found[j]:
            open_columns += 1
    return open_columns


@nb.njit(nogil=True, cache=True)
def _next_pivots(passes, target, state, bracket_counts, found, pivots):  # pragma: no cover - numba
    """Three pivots per open column: interpolated at the target rank and a spread either side.

    Every third pass they split the bracket in quarters instead, so a skewed column still
    shrinks its bracket geometrically.
    """
    for j in range(STRIP):
        lo = state[_LO, j]
        hi = state[_HI, j]
        if found[j] or not lo < hi:
            for p in range(PIVOTS):
                pivots[p, j] = lo
            continue
        lo_c = bracket_counts[0, j]
        hi_c = bracket_counts[1, j]
        span = max(hi_c - lo_c, 1)
        spread = max(1.5, 0.15 * span)
        for p in range(PIVOTS):
            if passes % 3 == 0:
                t = 0.25 * (p + 1)
            else:
                t = (target + (p - 1) * spread - lo_c) / span
                t = min(max(t, 0.02), 0.98)
            value = lo + np.float32(t) * (hi - lo)
            pivots[p, j] = value if lo < value < hi else lo


@nb.njit(nogil=True, cache=True)
def _strip_median(data, rows, sample_rows, pairs, k0, guess, have_guess, work, counts, found, out):
    # pragma: no cover - numba
    n = rows.size
    lo_rank = (n - 1) // 2
    hi_rank = n // 2
    window_lo = max(hi_rank - REGISTERS + 1, 0)
    window_hi = lo_rank
    target = 0.5 * (window_lo + window_hi)
    sample = work[:SAMPLE]
    pivots = work[SAMPLE:SAMPLE + PIVOTS]
    state = work[SAMPLE + PIVOTS:SAMPLE + PIVOTS + _STATE_ROWS]
    regs = work[SAMPLE + PIVOTS + _STATE_ROWS:SAMPLE + PIVOTS + _STATE_ROWS + REGISTERS]
    tallies = work[SAMPLE + PIVOTS + _STATE_ROWS + REGISTERS:]
    bracket_counts = counts[:2]
    found_count = counts[2]
    m = sample_rows.size
    for i in range(m):
        sample[i] = data[sample_rows[i], k0:k0 + STRIP]
    for p in range(pairs.shape[0]):
        a = sample[pairs[p, 0]]
        b = sample[pairs[p, 1]]
        for j in range(STRIP):
            x = a[j]
            y = b[j]
            a[j] = min(x, y)
            b[j] = max(x, y)
    window = window_hi - window_lo + 1
    for j in range(STRIP):
        if have_guess:
            # One rank is worth about (s12 - s3) / (9/16 n). The guess sits near rank hi_rank:
            # aim the middle pivot at the middle of the acceptance window, the others one
            # window either side, so a guess a few ranks off is still caught in this pass.
            rank = np.float32(SAMPLE / (9.0 * n)) * (sample[12, j] - sample[3, j])
            centre = guess[k0 + j] - rank * np.float32(hi_rank - target)
            pivots[0, j] = centre - rank * window
            pivots[1, j] = centre
            pivots[2, j] = centre + rank * window
        else:
            pivots[0, j] = sample[5, j]
            pivots[1, j] = np.float32(0.5) * (sample[7, j] + sample[8, j])
            pivots[2, j] = sample[10, j]
        found[j] = window_lo == 0
        found_count[j] = 0
    # The sample's extremes open the bracket, at the ranks they are expected to have: the
    # bracket only steers the pivots, and the counts of its ends are checked where they matter.
    outer = n // (m + 1)
    for j in range(STRIP):
        state[_LO, j] = sample[0, j]
        bracket_counts[0, j] = outer
        top = sample[m - 1, j]
        state[_HI, j] = top + np.float32(1.0) + abs(top) * np.float32(2.0**-20)
        bracket_counts[1, j] = n - outer
    _count(data, rows, k0, pivots, tallies)
    open_columns = _update(pivots, tallies, window_lo, window_hi, state, bracket_counts, found, found_count)
    passes = 0
    while open_columns > SCALAR_COLUMNS and passes < MAX_PASSES:
        passes += 1
        _next_pivots(passes, target, state, bracket_counts, found, pivots)
        _count(data, rows, k0, pivots, tallies)
        open_columns = _update(pivots, tallies, window_lo, window_hi, state, bracket_counts, found, found_count)
    threshold = pivots[0]
    for j in range(STRIP):
        threshold[j] = state[_LO, j] if found[j] else _BIG
    _smallest_at_or_above(data, rows, k0, threshold, regs)
    column = np.empty(n, dtype=np.float32)
    for j in range(STRIP):
        if found[j]:
            c = found_count[j]
            out[k0 + j] = np.float32(0.5) * (regs[lo_rank - c, j] + regs[hi_rank - c, j])
        else:
            out[k0 + j] = _bracket_median(data, rows, k0 + j, state[_LO, j], state[_HI, j], column)


@nb.njit(nogil=True, cache=True)
def _bracket_median(data, rows, k, lo, hi, column):  # pragma: no cover - numba
    """Median of column ``k``, sorting only its values in [lo, hi) when they hold the middle ranks
    (all of them otherwise)."""
    n = rows.size
    lo_rank = (n - 1) // 2
    hi_rank = n // 2
    below = 0
    inside = 0
    above = _BIG
    for i in range(n):
        v = data[rows[i], k]
        if v < lo:
            below += 1
        elif v < hi:
            column[inside] = v
            inside += 1
        else:
            above = min(above, v)
    if not below <= lo_rank < below + inside:
        for i in range(n):
            column[i] = data[rows[i], k]
        return np.float32(np.median(column))
    middle = np.sort(column[:inside])
    second = middle[hi_rank - below] if hi_rank < below + inside else above
    return np.float32(0.5) * (middle[lo_rank - below] + second)


@nb.njit(nogil=True, cache=True)
def column_median(data, rows, sample_rows, pairs, guess, have_guess, out):  # pragma: no cover - numba
    """out[k] = median over ``data[rows, k]`` for the first L = ``out.size`` columns of ``data``.

    ``data`` may have more columns than L: padding its rows keeps a strip's rows from falling
    into the same few cache sets, which a power-of-two row length does. ``guess`` (L,) seeds the
    search when ``have_guess`` (the previous B-line's median is a good one); it changes only the
    speed, never the result. The last strip overlaps the one before when L is not a multiple of
    ``STRIP``; fewer columns than a strip take the scalar path.
    """
    length = out.size
    if length < STRIP:
        column = np.empty(rows.size, dtype=np.float32)
        for k in range(length):
            for i in range(rows.size):
                column[i] = data[rows[i], k]
            out[k] = np.median(column)
        return
    work = np.empty((SAMPLE + PIVOTS + _STATE_ROWS + REGISTERS + PIVOTS, STRIP), dtype=np.float32)
    counts = np.empty((3, STRIP), dtype=np.int32)
    found = np.empty(STRIP, dtype=np.bool_)
    for start in range(0, length, STRIP):
        k0 = min(start, length - STRIP)
        _strip_median(data, rows, sample_rows, pairs, k0, guess, have_guess, work, counts, found, out)


def sample_rows(rows: npt.NDArray[np.integer]) -> npt.NDArray[np.int64]:
    """``SAMPLE`` rows spread evenly over ``rows`` (with repeats when there are fewer)."""
    picks = np.linspace(0, rows.size - 1, SAMPLE).round().astype(np.int64)
    return np.ascontiguousarray(np.asarray(rows, dtype=np.int64)[picks])


def median_of_columns(
    data: npt.NDArray[np.floating], rows: npt.NDArray[np.integer] | None = None
) -> npt.NDArray[np.float32]:
    """Exact median over ``rows`` (default all) of a (rows, columns) array, per column."""
    data = np.ascontiguousarray(data, dtype=np.float32)
    if data.ndim != 2 or data.shape[0] < 1:
        raise ValueError(f"need a (rows >= 1, columns) array, found shape {data.shape}")
    picked = np.arange(data.shape[0], dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    out = np.empty(data.shape[1], dtype=np.float32)
    column_median(data, picked, sample_rows(picked), SAMPLE_PAIRS, np.empty(0, np.float32), False, out)
    return out
