"""A whole PS-OCT tile: spectral blocks → volumes → surface → en-face, in parallel blocks.

Work is split into blocks of B-lines run by a thread pool: the numba kernels and FFTW release
the GIL, so threads scale across cores without copying the tile. Volumes are kept in RAM as
float32 (B-lines, A-lines, depth) because the en-face window depends on the median-filtered
surface, which needs neighbouring B-lines: at full depth they take ~1.5× the raw tile, and the
peak with the raw tile itself is ~2.8× (per-thread scratch is a few B-lines).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from opticstream_napari.host import usable_cores
from opticstream_napari.processing.psoct.enface import EnfaceParams, enface_maps
from opticstream_napari.processing.psoct.spectral import FULL_SCALE_16BIT, SpectralReconstructor, Volumes
from opticstream_napari.processing.psoct.surface import (
    flat_surface,
    gradient_surface,
    smooth_surface,
)

BLOCK_BLINES = 2


@dataclass(slots=True)
class StageTimes:
    """Seconds spent per stage, summed over worker threads."""

    volumes: float = 0.0
    surface: float = 0.0
    enface: float = 0.0
    wall: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {"volumes": self.volumes, "surface": self.surface, "enface": self.enface, "wall": self.wall}


@dataclass(slots=True)
class TileResult:
    """Reconstruction of one tile; arrays are (B-lines, A-lines[, depth]) = (y, x[, z]).

    ``saturated`` (B-lines, 2) counts, per B-line and camera, the raw samples at or above the
    full scale the tile was reconstructed with (None for complex input): the facts a caller's
    saturation check needs, gathered while the samples were in cache.
    """

    volumes: Volumes
    surface: npt.NDArray[np.int32]
    enface: dict[str, npt.NDArray[np.float32]]
    times: StageTimes = field(default_factory=StageTimes)
    saturated: npt.NDArray[np.int64] | None = None


SurfaceSpec = str | int | npt.NDArray[np.integer]


def volume_buffers(reconstructor: SpectralReconstructor, blines: int) -> Volumes:
    """Volumes to reuse across tiles, touched here: first-touch page faults (about 1 s per
    270 MB on the project's VM) would otherwise land in the first tile and cost more than its FFTs."""
    shape = (blines, reconstructor.alines, reconstructor.depth)
    return Volumes(*(np.full(shape, 0.0, dtype=np.float32) for _ in range(3)))


def reconstruct_spectral_tile(
    raw: npt.NDArray[np.uint16],
    reconstructor: SpectralReconstructor,
    enface: EnfaceParams,
    surface: SurfaceSpec = "gradient",
    workers: int | None = None,
    buffers: Volumes | None = None,
    *,
    stored_order: bool = False,
    full_scale: int = FULL_SCALE_16BIT,
) -> TileResult:
    """Reconstruct a (B-lines, 2, A-lines, L) uint16 tile.

    Cameras are in pixel order, or with ``stored_order`` as the instrument stores them (camera
    2 reversed: pass ``SpectralTile.stored``, no copy). ``buffers`` (from :func:`volume_buffers`)
    are overwritten and returned inside the result. ``full_scale`` is the camera's maximum
    count (4095 for 12-bit data); samples at or above it are counted in ``result.saturated``.
    """
    reconstructor.check_block(raw)
    nblines = raw.shape[0]
    volumes = buffers if buffers is not None else volume_buffers(reconstructor, nblines)
    expected = (nblines, reconstructor.alines, reconstructor.depth)
    if volumes.dbi.shape != expected:
        raise ValueError(f"volume buffers are {volumes.dbi.shape}, the tile needs {expected}")
    times = StageTimes()
    start = time.perf_counter()
    blocks = [(b, min(b + BLOCK_BLINES, nblines)) for b in range(0, nblines, BLOCK_BLINES)]
    gradient = isinstance(surface, str) and surface == "gradient"
    raw_surface = np.zeros((nblines, reconstructor.alines), dtype=np.int32)
    saturated = np.zeros((nblines, 2), dtype=np.int64)

    def volumes_of(bounds: tuple[int, int]) -> tuple[float, float]:
        b0, b1 = bounds
        t0 = time.perf_counter()
        reconstructor.volumes(
            raw[b0:b1], Volumes(volumes.dbi[b0:b1], volumes.r3d[b0:b1], volumes.o3d[b0:b1]),
            stored_order=stored_order, full_scale=full_scale, saturated=saturated[b0:b1],
        )
        t1 = time.perf_counter()
        if gradient:
            raw_surface[b0:b1] = gradient_surface(volumes.dbi[b0:b1])
        return t1 - t0, time.perf_counter() - t1

    with ThreadPoolExecutor(max_workers=workers or usable_cores()) as pool:
        spent = list(pool.map(volumes_of, blocks))
        times.volumes = sum(v for v, _ in spent)
        times.surface = sum(s for _, s in spent)
        t0 = time.perf_counter()
        surf = (
            smooth_surface(raw_surface, reconstructor.depth) if gradient
            else resolve_surface(surface, volumes.dbi)
        )
        times.surface += time.perf_counter() - t0
        maps = _parallel_enface(pool, volumes, surf, enface, blocks, times)
    times.wall = time.perf_counter() - start
    return TileResult(volumes, surf, maps, times, saturated)


def _parallel_enface(
    pool: ThreadPoolExecutor,
    volumes: Volumes,
    surface: npt.NDArray[np.int32],
    params: EnfaceParams,
    blocks: list[tuple[int, int]],
    times: StageTimes,
) -> dict[str, npt.NDArray[np.float32]]:
    def one(bounds: tuple[int, int]) -> tuple[dict[str, npt.NDArray[np.float32]], float]:
        b0, b1 = bounds
        t0 = time.perf_counter()
        maps = enface_maps(volumes.dbi[b0:b1], volumes.r3d[b0:b1], volumes.o3d[b0:b1], surface[b0:b1], params)
        return maps, time.perf_counter() - t0

    parts = list(pool.map(one, blocks))
    times.enface = sum(t for _, t in parts)
    return {name: np.concatenate([p[name] for p, _ in parts]) for name in parts[0][0]}


def finish_tile(
    volumes: Volumes, enface: EnfaceParams, surface: SurfaceSpec, times: StageTimes | None = None
) -> TileResult:
    """Surface and en-face maps from complete volumes."""
    times = times or StageTimes()
    t0 = time.perf_counter()
    surf = resolve_surface(surface, volumes.dbi)
    times.surface = time.perf_counter() - t0
    t0 = time.perf_counter()
    maps = enface_maps(volumes.dbi, volumes.r3d, volumes.o3d, surf, enface)
    times.enface = time.perf_counter() - t0
    return TileResult(volumes, surf, maps, times)


def resolve_surface(spec: SurfaceSpec, dbi: npt.NDArray[np.float32]) -> npt.NDArray[np.int32]:
    """A surface map from a method name, a flat depth index, or a given (B, A) map."""
    depth = dbi.shape[-1]
    lead = dbi.shape[:-1]
    if isinstance(spec, np.ndarray):
        if spec.shape != lead:
            raise ValueError(f"surface map has shape {spec.shape}, the tile is {lead}")
        return np.clip(spec, 0, depth - 1).astype(np.int32)
    if isinstance(spec, int | np.integer):
        return flat_surface(lead, int(spec), depth)
    if spec == "gradient":
        return smooth_surface(gradient_surface(dbi), depth)
    raise ValueError(f"surface must be 'gradient', a depth index or a map, found {spec!r}")
