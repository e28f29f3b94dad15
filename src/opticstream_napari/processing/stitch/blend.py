"""Ramp-weighted blending of placed tiles into 2D en-face and 3D volume mosaics (spec 4.7).

Arrays are C-ordered like the OME-Zarr outputs: en-face tiles ``(y, x)``, volume tiles
``(z, y, x)``; positions are ``(y, x)`` in pixels. Weights are the original's separable ramp,
constant over depth. Intensity-like maps blend as ``Σ w·t / Σ w``; orientation (degrees,
180°-periodic) blends as the *weighted* circular mean of the doubled angle (the original
dropped the weights). Non-finite tile samples carry no weight, and output pixels no finite
sample covers are NaN.

Placement: sub-pixel positions are rounded to the nearest pixel. Interpolating would low-pass
every tile (blurring speckle and texture), cost a resampling pass, and need angle-aware
interpolation for orientation; rounding keeps raw samples and errs by at most half a pixel,
well inside the ramp's width.

Memory: :func:`blend_region` builds one output region (e.g. one pyramid write unit) from the
tiles that touch it, in row strips small enough to stay in cache, so a mosaic is never held
whole. Tiles are summed in the layout's order, so recomputing a region after a new tile
arrives gives exactly what a single pass over all tiles gives.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numba as nb
import numpy as np

_STRIP_BYTES = 2 << 20

TileReader = Callable[[Hashable, tuple[slice, ...]], np.ndarray | None]
"""``read_tile(key, part)``: the part (tile-local slices) of a tile, or None if it is missing."""


class BlendMode(StrEnum):
    LINEAR = "linear"
    CIRCULAR_180 = "circular_180"


_CIRCULAR_MODALITIES = frozenset({"ori", "o3d"})


def blend_mode_for(modality: str) -> BlendMode:
    """Orientation maps (``ori``, ``O3D``) are angles; everything else is intensity-like."""
    return BlendMode.CIRCULAR_180 if modality.lower() in _CIRCULAR_MODALITIES else BlendMode.LINEAR


def ramp(length: int, overlap: int) -> np.ndarray:
    """1 in the middle, ``linspace(0, 1, overlap + 2)[1:-1]`` over each end (spec 4.7).

    The edge pixel keeps a weight above 0, so a pixel only one tile covers keeps its value.
    """
    if length < 1 or overlap < 0:
        raise ValueError(f"ramp needs length >= 1 and overlap >= 0, found {length}, {overlap}")
    weights = np.ones(length, dtype=np.float32)
    if overlap:
        rising = np.linspace(0.0, 1.0, overlap + 2, dtype=np.float32)[1:-1]
        ends = np.ones(length, dtype=np.float32)
        n = min(overlap, length)
        ends[:n] = rising[:n]
        weights = np.minimum(ends, ends[::-1])
    return weights


@dataclass(frozen=True, eq=False)
class MosaicLayout:
    """Integer tile positions on the canvas, the tile shape, and the blending ramps."""

    tile_shape: tuple[int, int]
    offsets: Mapping[Hashable, tuple[int, int]]
    weights_y: np.ndarray
    weights_x: np.ndarray
    depth: int | None = None

    @classmethod
    def from_positions(
        cls,
        positions: Mapping[Hashable, Sequence[float]],
        tile_shape: Sequence[int],
        overlap_fraction: float,
        depth: int | None = None,
    ) -> MosaicLayout:
        """Round ``(y, x)`` positions to pixels and shift the smallest to 0.

        The ramp covers ``int(overlap_fraction × tile size)`` pixels at each end of each axis.
        """
        if not positions:
            raise ValueError("a mosaic needs at least one tile position")
        if not 0 <= overlap_fraction < 1:
            raise ValueError(f"overlap fraction must be in [0, 1), found {overlap_fraction}")
        h, w = (int(n) for n in tile_shape)
        keys = list(positions)
        rounded = np.floor(np.asarray([positions[k] for k in keys], dtype=float) + 0.5)
        if rounded.shape != (len(keys), 2) or not np.isfinite(rounded).all():
            raise ValueError("tile positions must be finite (y, x) pairs")
        rounded = (rounded - rounded.min(axis=0)).astype(int)
        offsets = {k: (int(y), int(x)) for k, (y, x) in zip(keys, rounded, strict=True)}
        return cls(
            tile_shape=(h, w),
            offsets=offsets,
            weights_y=ramp(h, int(overlap_fraction * h)),
            weights_x=ramp(w, int(overlap_fraction * w)),
            depth=depth,
        )

    @property
    def shape(self) -> tuple[int, ...]:
        """Canvas shape: ``(H, W)``, or ``(depth, H, W)`` for volumes."""
        h, w = self.tile_shape
        plane = (
            max(y for y, _ in self.offsets.values()) + h,
            max(x for _, x in self.offsets.values()) + w,
        )
        return plane if self.depth is None else (self.depth, *plane)

    def tile_region(self, key: Hashable) -> tuple[slice, ...]:
        """The canvas region a tile covers (all of depth for volumes)."""
        y, x = self.offsets[key]
        h, w = self.tile_shape
        plane = (slice(y, y + h), slice(x, x + w))
        return plane if self.depth is None else (slice(0, self.depth), *plane)

    def tiles_touching(self, rows: slice, cols: slice) -> list[Hashable]:
        """Tiles overlapping a canvas window, in the layout's (canonical) order."""
        h, w = self.tile_shape
        return [
            k
            for k, (y, x) in self.offsets.items()
            if y < rows.stop and rows.start < y + h and x < cols.stop and cols.start < x + w
        ]


class BlendAccumulator:
    """Running weighted sums over one output window; tiles may be added in any order.

    Linear mode keeps Σw·t and Σw; circular mode keeps Σw·cos 2θ, Σw·sin 2θ and Σw, so the
    result is the same whatever the order (up to float rounding; :func:`blend_region` fixes
    the order to make it exact).
    """

    def __init__(
        self, shape: Sequence[int], origin: Sequence[int] = (0, 0), mode: BlendMode = BlendMode.LINEAR
    ) -> None:
        self.shape = tuple(int(n) for n in shape)
        if len(self.shape) not in (2, 3):
            raise ValueError(f"a blend window is 2D or 3D, found shape {self.shape}")
        self.origin = (int(origin[0]), int(origin[1]))
        self.mode = mode
        volume = self.shape if len(self.shape) == 3 else (1, *self.shape)
        self._weight = np.zeros(volume, dtype=np.float32)
        self._sum = np.zeros(volume, dtype=np.float32)
        self._sin = np.zeros(volume, dtype=np.float32) if mode is BlendMode.CIRCULAR_180 else None

    def add(
        self,
        tile: np.ndarray,
        position: Sequence[int],
        weights_y: np.ndarray,
        weights_x: np.ndarray,
    ) -> None:
        """Add a tile (or a part of one) whose top-left pixel sits at canvas ``position``.

        ``weights_y`` and ``weights_x`` are the ramp values of the rows and columns given.
        Parts outside the window are ignored.
        """
        values = tile if tile.ndim == 3 else tile[np.newaxis]
        if values.ndim != 3 or values.shape[0] != self._sum.shape[0]:
            raise ValueError(f"tile of shape {tile.shape} does not fit a window {self.shape}")
        if values.shape[1:] != (len(weights_y), len(weights_x)):
            raise ValueError(f"weights do not match a tile part of shape {tile.shape}")
        y0 = max(position[0], self.origin[0])
        x0 = max(position[1], self.origin[1])
        y1 = min(position[0] + values.shape[1], self.origin[0] + self._sum.shape[1])
        x1 = min(position[1] + values.shape[2], self.origin[1] + self._sum.shape[2])
        if y0 >= y1 or x0 >= x1:
            return
        ty = slice(y0 - position[0], y1 - position[0])
        tx = slice(x0 - position[1], x1 - position[1])
        wy = np.ascontiguousarray(weights_y[ty], dtype=np.float32)
        wx = np.ascontiguousarray(weights_x[tx], dtype=np.float32)
        oy, ox = y0 - self.origin[0], x0 - self.origin[1]
        part = np.ascontiguousarray(values[:, ty, tx], dtype=np.float32)
        if self._sin is None:
            _accumulate(part, wy, wx, self._sum, self._weight, oy, ox)
        else:
            doubled = np.deg2rad(part) * np.float32(2.0)
            _accumulate_pair(
                np.cos(doubled), np.sin(doubled), wy, wx, self._sum, self._sin, self._weight, oy, ox
            )

    def result(self) -> np.ndarray:
        """Blended float32 window; NaN where no finite sample contributed."""
        if self._sin is None:
            out = np.empty_like(self._sum)
            _finish_linear(self._sum, self._weight, out)
        else:
            angle = np.rad2deg(np.arctan2(self._sin, self._sum)) * np.float32(0.5)
            out = np.where(self._weight > 0, angle, np.float32(np.nan))
        return out.reshape(self.shape)


def blend_region(
    layout: MosaicLayout,
    region: Sequence[slice],
    read_tile: TileReader,
    mode: BlendMode = BlendMode.LINEAR,
) -> np.ndarray:
    """Blend one canvas region from the tiles that touch it; NaN where no tile has data.

    ``read_tile`` returning None marks a missing tile: its area stays a visible gap (or is
    filled by neighbours) instead of a wrong value. A tile of the wrong shape is an error.
    """
    canvas = layout.shape
    if len(region) != len(canvas):
        raise ValueError(f"region has {len(region)} axes, the mosaic {len(canvas)}")
    bounds = [s.indices(n)[:2] for s, n in zip(region, canvas, strict=True)]
    *depth_bounds, (r0, r1), (c0, c1) = bounds
    depth = [slice(a, b) for a, b in depth_bounds]
    nz = depth_bounds[0][1] - depth_bounds[0][0] if depth_bounds else 1
    out = np.empty(tuple(b - a for a, b in bounds), dtype=np.float32)
    out_3d = out.reshape((nz, r1 - r0, c1 - c0))
    parts = _read_parts(layout, slice(r0, r1), slice(c0, c1), depth, read_tile)
    row_breaks = _breaks(r0, r1, [(py, py + p.shape[1]) for (py, _), p, _, _ in parts])
    col_breaks = _breaks(c0, c1, [(px, px + p.shape[2]) for (_, px), p, _, _ in parts])
    for ya, yb in itertools.pairwise(row_breaks):
        for xa, xb in itertools.pairwise(col_breaks):
            cell = out_3d[:, ya - r0 : yb - r0, xa - c0 : xb - c0]
            covering = [
                item for item in parts
                if item[0][0] <= ya and yb <= item[0][0] + item[1].shape[1]
                and item[0][1] <= xa and xb <= item[0][1] + item[1].shape[2]
            ]
            if len(covering) == 1:
                _copy_single(cell, covering[0], ya, xa, mode)
            else:
                _blend_cell(cell, covering, ya, xa, mode)
    return out


def _breaks(start: int, stop: int, spans: list[tuple[int, int]]) -> list[int]:
    """Where the set of covering tiles can change along one axis of the window."""
    inside = {v for span in spans for v in span if start < v < stop}
    return sorted({start, stop} | inside)


_Part = tuple[tuple[int, int], np.ndarray, np.ndarray, np.ndarray]


def _copy_single(cell: np.ndarray, item: _Part, ya: int, xa: int, mode: BlendMode) -> None:
    """One tile covers the cell: Σw·t/Σw is the tile itself, so copy it (non-finite samples
    become NaN and angles are wrapped into [-90°, 90°], as the accumulation would)."""
    (py, px), part, _, _ = item
    values = part[:, ya - py : ya - py + cell.shape[1], xa - px : xa - px + cell.shape[2]]
    if mode is BlendMode.CIRCULAR_180:
        values = values - np.float32(180.0) * np.round(values / np.float32(180.0))
    _copy_finite(values, cell)


def _blend_cell(
    cell: np.ndarray, covering: list[_Part], ya: int, xa: int, mode: BlendMode
) -> None:
    """Accumulate the tiles covering the cell in row strips small enough to stay in cache."""
    nz, height, width = cell.shape
    rows = max(1, _STRIP_BYTES // max(1, nz * width * 4))
    for s0 in range(0, height, rows):
        s1 = min(s0 + rows, height)
        acc = BlendAccumulator((nz, s1 - s0, width), (ya + s0, xa), mode)
        for position, part, wy, wx in covering:
            acc.add(part, position, wy, wx)
        cell[:, s0:s1] = acc.result()


def _read_parts(
    layout: MosaicLayout,
    rows: slice,
    cols: slice,
    depth: list[slice],
    read_tile: TileReader,
) -> list[_Part]:
    """Each touching tile's part inside the window, as a 3D array with its ramps."""
    h, w = layout.tile_shape
    parts = []
    for key in layout.tiles_touching(rows, cols):
        y, x = layout.offsets[key]
        ty = slice(max(rows.start, y) - y, min(rows.stop, y + h) - y)
        tx = slice(max(cols.start, x) - x, min(cols.stop, x + w) - x)
        local = (*depth, ty, tx)
        part = read_tile(key, local)
        if part is None:
            continue
        expected = tuple(s.stop - s.start for s in local)
        if part.shape != expected:
            raise ValueError(
                f"tile {key!r}: part {local} has shape {part.shape}, expected {expected} "
                f"(tiles must be {(layout.depth, h, w) if depth else (h, w)})"
            )
        part3 = part if part.ndim == 3 else part[np.newaxis]
        parts.append(((y + ty.start, x + tx.start), part3, layout.weights_y[ty], layout.weights_x[tx]))
    return parts


def coverage(layout: MosaicLayout, available: set[Hashable] | None = None) -> np.ndarray:
    """How many tiles cover each canvas pixel (uint16, ``(H, W)``): 0 marks a gap.

    Pass ``available`` to count only the tiles that exist so far.
    """
    h, w = layout.tile_shape
    counts = np.zeros(layout.shape[-2:], dtype=np.uint16)
    for key, (y, x) in layout.offsets.items():
        if available is None or key in available:
            counts[y : y + h, x : x + w] += 1
    return counts


@nb.njit(nogil=True, cache=True)
def _accumulate(part, wy, wx, total, weight, oy, ox):
    nz, ny, nx = part.shape
    zero = np.float32(0.0)
    for k in range(nz):
        for j in range(ny):
            row = part[k, j]
            acc = total[k, oy + j, ox : ox + nx]
            wsum = weight[k, oy + j, ox : ox + nx]
            wj = wy[j]
            for i in range(nx):
                v = row[i]
                finite = v - v == zero
                wi = wj * wx[i] if finite else zero
                acc[i] += wi * (v if finite else zero)
                wsum[i] += wi


@nb.njit(nogil=True, cache=True)
def _accumulate_pair(cos, sin, wy, wx, total_cos, total_sin, weight, oy, ox):
    nz, ny, nx = cos.shape
    zero = np.float32(0.0)
    for k in range(nz):
        for j in range(ny):
            c_row = cos[k, j]
            s_row = sin[k, j]
            acc_c = total_cos[k, oy + j, ox : ox + nx]
            acc_s = total_sin[k, oy + j, ox : ox + nx]
            wsum = weight[k, oy + j, ox : ox + nx]
            wj = wy[j]
            for i in range(nx):
                c = c_row[i]
                finite = c - c == zero
                wi = wj * wx[i] if finite else zero
                acc_c[i] += wi * (c if finite else zero)
                acc_s[i] += wi * (s_row[i] if finite else zero)
                wsum[i] += wi


@nb.njit(nogil=True, cache=True)
def _copy_finite(values, out):
    nz, ny, nx = out.shape
    for k in range(nz):
        for j in range(ny):
            for i in range(nx):
                v = np.float32(values[k, j, i])
                out[k, j, i] = v if v - v == np.float32(0.0) else np.nan


@nb.njit(nogil=True, cache=True)
def _finish_linear(total, weight, out):
    flat_total = total.ravel()
    flat_weight = weight.ravel()
    flat_out = out.ravel()
    for i in range(flat_out.size):
        w = flat_weight[i]
        flat_out[i] = flat_total[i] / w if w > 0 else np.nan
