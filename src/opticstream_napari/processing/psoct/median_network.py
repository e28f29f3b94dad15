"""Median of a few rows, element-wise, with a sorting network.

The DC estimate needs, for every k sample, the median over A-lines. A per-k quickselect costs
more than the rest of the spectral preparation; a compare-exchange network applied to whole
rows is pure min/max over contiguous memory, which vectorises. Batcher's odd–even merge network
is built for the next power of two, padded with ±inf so the median is unchanged, and pruned to
the comparators that can reach the middle positions.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import numpy.typing as npt


def batcher_network(size: int) -> list[tuple[int, int]]:
    """Compare-exchange pairs (low, high) that sort ``size`` (a power of two) values."""
    if size < 1 or size & (size - 1):
        raise ValueError(f"network size must be a power of two, found {size}")
    pairs: list[tuple[int, int]] = []
    span = 1
    while span < size:
        step = span
        while step >= 1:
            for start in range(step % span, size - step, 2 * step):
                for offset in range(min(step, size - start - step)):
                    low = start + offset
                    if low // (2 * span) == (low + step) // (2 * span):
                        pairs.append((low, low + step))
            step //= 2
        span *= 2
    return pairs


@cache
def median_plan(count: int) -> tuple[npt.NDArray[np.int32], int, int, int]:
    """Network for the median of ``count`` values: (pairs, padded size, −inf rows, middle rows).

    Returns the pruned comparator array, the padded size P, how many leading rows are −inf
    padding, and the sorted positions whose mean is the median (equal for odd counts).
    """
    if count < 1:
        raise ValueError(f"median needs at least one value, found {count}")
    size = 1 << (count - 1).bit_length()
    low_pad = (size - count) // 2
    upper = low_pad + count // 2
    lower = upper if count % 2 else upper - 1
    needed = {lower, upper}
    kept: list[tuple[int, int]] = []
    for low, high in reversed(batcher_network(size)):
        if low in needed or high in needed:
            kept.append((low, high))
            needed.update((low, high))
    pairs = np.array(kept[::-1], dtype=np.int32).reshape(-1, 2)
    return pairs, size, low_pad, lower * size + upper
