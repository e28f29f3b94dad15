"""Batcher's odd–even merge sorting network, as compare-exchange pairs.

A network applied to whole rows is pure min/max over contiguous memory, which vectorises; the
DC median (:mod:`column_median`) sorts a 16-row sample with it to seed its counting search.
"""

from __future__ import annotations


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
