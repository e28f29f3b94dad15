"""Spectral → complex → volumes for blocks of B-lines (spec 4.1, 4.2).

Sign convention, stated once: spectra are resampled onto the uniform-k grid from high k to low
k and transformed with the forward DFT ``X[n] = Σ_k s[k]·exp(−2πi·k·n/L)``; depth bin n ≥ 0 is
kept as is (no conjugation). J_c[z] = X_c[cut + z]. The phase difference is taken as
arg(J1·conj J2), so O3D = (arg J1 − arg J2 + 2·offset) / 2, wrapped into [−90°, 90°].
Dispersion compensation multiplies the resampled spectrum by exp(−i·φ(k)).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from opticstream_napari.processing.psoct import kernels
from opticstream_napari.processing.psoct.calibration import Calibration
from opticstream_napari.processing.psoct.column_median import SAMPLE_PAIRS, sample_rows
from opticstream_napari.processing.psoct.fft import aligned_empty, k_transform

Float32Array = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class SpectralParams:
    """Reconstruction parameters that do not depend on the tile's geometry."""

    autocorr_cut: int = 24
    depth: int | None = None
    window: str = "none"
    dc_median_lines: int | None = None
    phase_offset_deg: float = 100.0
    flip_phase: bool = False
    flip_z: bool = True


@dataclass(frozen=True, slots=True)
class Volumes:
    """dBI (dB), R3D and O3D (degrees) of a block, each (B-lines, A-lines, depth) float32."""

    dbi: Float32Array
    r3d: Float32Array
    o3d: Float32Array


CHUNK_ALINES = 32
FULL_SCALE_16BIT = 65535
# Floats added to each resampled row: 2048-float rows alias onto a sixteenth of the L2's sets,
# and the DC median's passes down a strip of columns then stream from L3 instead of L2.
ROW_PAD = 16


class Chunk(NamedTuple):
    """The FFT of A-lines ``a0:a1`` of B-line ``bline`` of a block: each camera's spectra
    (rows, L), or both cameras packed in ``first`` (``second`` None) as :func:`kernels.pack_rows` made them."""

    bline: int
    a0: int
    a1: int
    first: npt.NDArray[np.complex64]
    second: npt.NDArray[np.complex64] | None


class SpectralReconstructor:
    """Turns raw spectral blocks of one tile geometry into complex depth profiles or volumes.

    Blocks are (B-lines, 2, A-lines, L) uint16, both cameras in increasing pixel order or, with
    ``stored_order``, camera 2 reversed as the instrument stores it (read without a copy).
    Buffers, FFT plans and the DC-median seeds belong to the calling thread, so one
    reconstructor serves a pool.
    """

    def __init__(
        self,
        calibration: Calibration,
        spectral_length: int,
        alines: int,
        params: SpectralParams = SpectralParams(),
        dispersion: npt.NDArray[np.float64] | None = None,
    ) -> None:
        length = spectral_length
        if calibration.spectral_length != length:
            raise ValueError(
                f"calibration is for {calibration.spectral_length} samples, the tile has {length}"
            )
        if length % 2 or length < 64:
            raise ValueError(f"spectral length must be even and >= 64, found {length}")
        self.length = length
        self.alines = alines
        self.params = params
        self.depth = params.depth if params.depth is not None else length // 2 - params.autocorr_cut
        if params.autocorr_cut + self.depth > length // 2 or self.depth < 1:
            raise ValueError(
                f"autocorr_cut {params.autocorr_cut} + depth {self.depth} must fit the "
                f"{length // 2} positive-depth bins of a {length}-sample spectrum"
            )
        self.index, self.weight = calibration.resampling()
        self.seg_starts, self.seg_left = _segments(self.index)
        window = _window(params.window, length)
        self.left = ((1 - self.weight) * window).astype(np.float32)
        self.right = (self.weight * window).astype(np.float32)
        self.phasor = _dispersion_phasor(dispersion, length)
        lines = params.dc_median_lines
        count = alines if lines is None else min(alines, lines)
        self.dc_rows = np.unique(np.linspace(0, alines - 1, count).round().astype(np.int64))
        self.sample_rows = sample_rows(self.dc_rows)
        self.two_offset = np.float32(2 * np.deg2rad(params.phase_offset_deg))
        self._local = threading.local()

    def check_block(self, raw: npt.NDArray[np.uint16]) -> None:
        expected = (2, self.alines, self.length)
        if raw.ndim != 4 or raw.shape[1:] != expected:
            raise ValueError(f"spectral block must be (B-lines, *{expected}), found {raw.shape}")

    def _scratch(self, name: str, shape: tuple[int, ...], dtype: npt.DTypeLike) -> npt.NDArray:
        cache = self._local.__dict__.setdefault("scratch", {})
        key = (name, shape)
        if key not in cache:
            cache[key] = aligned_empty(shape, dtype)
        return cache[key]

    def _prepare(
        self, raw: npt.NDArray[np.uint16], stored_order: bool, full_scale: int
    ) -> tuple[Float32Array, Float32Array, npt.NDArray[np.int64]]:
        """Resampled windowed spectra (B, 2, A, L + ``ROW_PAD``; the pad is not data), each
        B-line's DC (B, 2, L) and the saturated-sample counts (B, 2) of a block."""
        self.check_block(raw)
        nblines = raw.shape[0]
        prepared = self._scratch("prepared", (nblines, 2, self.alines, self.length + ROW_PAD), np.float32)
        shift = self._scratch("shift", (nblines, 2, self.length), np.float32)
        seeds = self._local.__dict__.get("seeds")
        if seeds is None:
            seeds = self._local.seeds = (np.zeros((2, self.length), np.float32), np.zeros(2, np.bool_))
        saturated = np.zeros((nblines, 2), dtype=np.int64)
        kernels.prepare_spectra(
            raw, stored_order, self.seg_starts, self.seg_left, self.left, self.right, self.dc_rows,
            self.sample_rows, SAMPLE_PAIRS, full_scale, *seeds, prepared, shift, saturated,
        )
        return prepared, shift, saturated

    def _chunks(self, prepared: Float32Array, shift: Float32Array) -> Iterator[Chunk]:
        """Yield the FFT of each L2-sized chunk of A-lines of the block.

        The DC is subtracted (and the dispersion phase applied) chunk by chunk, just before the
        FFT reads the chunk, so it costs no extra pass over the block in memory. Without
        dispersion the two cameras' real spectra are packed into one complex transform.
        """
        packed = self.phasor is None
        spectra = self._scratch("spectra", (1 if packed else 2, CHUNK_ALINES, self.length), np.complex64)
        staging = self._scratch("staging", (CHUNK_ALINES, self.length), np.complex64)
        for b in range(prepared.shape[0]):
            for a0 in range(0, self.alines, CHUNK_ALINES):
                a1 = min(a0 + CHUNK_ALINES, self.alines)
                rows = a1 - a0
                plan = k_transform(rows, self.length)
                if packed:
                    kernels.pack_rows(prepared[b, 0, a0:a1], shift[b, 0], prepared[b, 1, a0:a1], shift[b, 1],
                                      staging[:rows])
                    plan(staging[:rows], spectra[0, :rows])
                    yield Chunk(b, a0, a1, spectra[0, :rows], None)
                    continue
                for camera in range(2):
                    kernels.subtract_rotate_rows(prepared[b, camera, a0:a1], shift[b, camera], self.phasor,
                                                 staging[:rows])
                    plan(staging[:rows], spectra[camera, :rows])
                yield Chunk(b, a0, a1, spectra[0, :rows], spectra[1, :rows])

    def complex(
        self, raw: npt.NDArray[np.uint16], *, stored_order: bool = False
    ) -> tuple[npt.NDArray[np.complex64], ...]:
        """J1, J2 of a block: (B-lines, A-lines, depth) complex64 each, shallowest first.

        ``flip_z`` applies to volumes (:func:`complex_to_volumes` honours it), not to J.
        """
        shape = (raw.shape[0], self.alines, self.depth)
        j1 = np.empty(shape, dtype=np.complex64)
        j2 = np.empty(shape, dtype=np.complex64)
        cut = self.params.autocorr_cut
        prepared, shift, _ = self._prepare(raw, stored_order, FULL_SCALE_16BIT)
        for chunk in self._chunks(prepared, shift):
            b, a0, a1 = chunk.bline, chunk.a0, chunk.a1
            if chunk.second is None:
                kernels.unpack_pair(chunk.first, cut, j1[b, a0:a1], j2[b, a0:a1])
            else:
                j1[b, a0:a1] = chunk.first[:, cut:cut + self.depth]
                j2[b, a0:a1] = chunk.second[:, cut:cut + self.depth]
        return j1, j2

    def chunk_volumes(self, chunk: Chunk, out: Volumes) -> None:
        """dBI, R3D, O3D of one chunk's A-lines, into ``out``'s (B-lines, A-lines, depth) arrays."""
        power = self._scratch("power", (self.depth,), np.float32)
        bits = self._scratch("bits", (self.depth,), np.int32)
        p = self.params
        b, a0, a1 = chunk.bline, chunk.a0, chunk.a1
        targets = (out.dbi[b, a0:a1], out.r3d[b, a0:a1], out.o3d[b, a0:a1])
        if chunk.second is None:
            kernels.packed_to_volumes(chunk.first, p.autocorr_cut, self.two_offset, p.flip_phase, not p.flip_z,
                                      *targets, power, bits)
        else:
            kernels.spectra_to_volumes(chunk.first, chunk.second, p.autocorr_cut, self.two_offset, p.flip_phase,
                                       not p.flip_z, *targets, power, bits)

    def volumes(
        self,
        raw: npt.NDArray[np.uint16],
        out: Volumes | None = None,
        *,
        stored_order: bool = False,
        full_scale: int = FULL_SCALE_16BIT,
        saturated: npt.NDArray[np.int64] | None = None,
    ) -> Volumes:
        """dBI, R3D, O3D of a block, (B-lines, A-lines, depth), written into ``out`` when given.

        ``saturated`` (B-lines, 2), when given, receives each camera's count of raw samples at
        or above ``full_scale``: counted while the samples are in cache, for the caller's check.
        """
        shape = (raw.shape[0], self.alines, self.depth)
        if out is None:
            out = Volumes(*(np.empty(shape, dtype=np.float32) for _ in range(3)))
        prepared, shift, counts = self._prepare(raw, stored_order, full_scale)
        if saturated is not None:
            saturated[:] = counts
        for chunk in self._chunks(prepared, shift):
            self.chunk_volumes(chunk, out)
        return out


def _segments(index: npt.NDArray[np.int32]) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    """Runs of target samples whose left neighbours are consecutive pixels, per camera.

    Returns starts (2, S + 1) and the left pixel of each run's first sample (2, S); a camera
    with fewer runs is padded with empty ones, so resampling reads contiguous pixels, no gather.
    """
    length = index.shape[1]
    runs = []
    for camera in range(2):
        left = index[camera].astype(np.int64)
        starts = np.flatnonzero(np.diff(left - np.arange(length))) + 1
        first = np.concatenate([[0], starts])
        runs.append((np.concatenate([first, [length]]), left[first]))
    count = max(lefts.size for _, lefts in runs)
    starts = np.full((2, count + 1), length, dtype=np.uint64)
    lefts = np.zeros((2, count), dtype=np.uint64)
    for camera, (bounds, values) in enumerate(runs):
        starts[camera, : bounds.size] = bounds
        lefts[camera, : values.size] = values
    return starts, lefts


def _window(kind: str, length: int) -> Float32Array:
    if kind == "none":
        return np.ones(length, dtype=np.float32)
    if kind == "hann":
        return np.hanning(length).astype(np.float32)
    raise ValueError(f"spectral window must be 'none' or 'hann', found {kind!r}")


def _dispersion_phasor(
    dispersion: npt.NDArray[np.float64] | None, length: int
) -> npt.NDArray[np.complex64] | None:
    if dispersion is None:
        return None
    phase = np.asarray(dispersion, dtype=np.float64).reshape(-1)
    if phase.size == 0 or phase.size % length:
        raise ValueError(
            f"dispersion phase must hold a multiple of {length} values, found {phase.size}"
        )
    return np.exp(-1j * phase[:length]).astype(np.complex64)
