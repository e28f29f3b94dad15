"""The en-face mosaic step (place, fuse, mask, write) at the size of a real slab's grid.

Writes a mosaic's per-tile en-face maps (every modality of the config, 350 × 350 A-lines per
tile, as a real PS-OCT tile gives) cut from one textured sample with stage jitter, then runs
the engine's ``finalise_mosaic`` on them once, as the executor does at the end of a mosaic (after
a 3 × 3 mosaic that compiles the kernels, as a worker process has), and prints its time with
the share of each phase (from a profile of the same run) and the peak memory. Usage::

    .venv/bin/python benchmarks/bench_enface_mosaic.py [--grid 20] [--scratch /tmp/some-unique-folder]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from _machine import machine_line, peak_rss_gib
from opticstream_napari.config import PSOCTScanConfig
from opticstream_napari.engine.pipelines.psoct_mosaic import (
    finalise_mosaic,
    mosaic_geometry,
    mosaic_tiles,
    nominal_positions,
    pixel_size_um,
)
from opticstream_napari.engine.pipelines.psoct_tile import tile_output_path
from opticstream_napari.identity import PSOCTMosaicId
from opticstream_napari.io.nifti import write_enface_nifti
from opticstream_napari.simulate.psoct import psoct_preset

TILE = 350
WARM_UP_GRID = 3
JITTER_PX = 4
PHASES = {  # what finalise_mosaic spends its time on, by the function that does it
    "placement (registration)": "place_mosaic",
    "fusion and mask": "fuse_enface",
    "OME-Zarr pyramids": "write_pyramid",
    "NIfTI (.nii.gz)": "write_enface_nifti",
    "JPEG previews": "write_preview",
}


def grid_config(base: Path, grid: int) -> PSOCTScanConfig:
    config = psoct_preset(base, "large")
    acquisition = config.acquisition.model_copy(update={
        "grid_size_x_normal": grid, "grid_size_x_tilted": grid, "grid_size_y": grid,
        "tile_size_x_normal": TILE, "tile_size_x_tilted": TILE, "tile_size_y": TILE,
    })
    return config.model_copy(update={"acquisition": acquisition})


def write_tiles(config: PSOCTScanConfig, mosaic: PSOCTMosaicId) -> tuple[int, int]:
    """Each tile's maps cut from one sample at its stage position plus jitter; the sample's shape."""
    _, (height, width) = mosaic_geometry(config, mosaic.mosaic)
    positions = nominal_positions(config, mosaic.mosaic)
    rng = np.random.default_rng(0)
    rows = int(max(y for y, _ in positions.values())) + height + 2 * JITTER_PX
    columns = int(max(x for _, x in positions.values())) + width + 2 * JITTER_PX
    texture = gaussian_filter(rng.normal(0.0, 1.0, (rows, columns)).astype(np.float32), 3.0) * 20 + 60
    orientation = rng.uniform(-90.0, 90.0, (rows, columns)).astype(np.float32)
    pixel = pixel_size_um(config)
    for tile in mosaic_tiles(config, mosaic):
        y, x = (round(v) + int(rng.integers(0, JITTER_PX)) for v in positions[tile.tile])
        window = (slice(y, y + height), slice(x, x + width))
        for modality in (m.value for m in config.enface_modalities):
            if modality == "ori":
                values = orientation[window]
            elif modality == "surf":
                values = np.full((height, width), 100.0, np.float32)
            else:
                values = texture[window]
            path = tile_output_path(config, tile, modality)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_enface_nifti(path, values, pixel)
    return rows, columns


def warm_up(scratch: Path) -> None:
    """A small mosaic first: the engine's worker processes compile their kernels once, not per mosaic."""
    config = grid_config(scratch / "warm-up", WARM_UP_GRID)
    mosaic = PSOCTMosaicId(config.project_name, 1, 1)
    write_tiles(config, mosaic)
    finalise_mosaic(config.model_dump(mode="json"), mosaic.to_dict())


def run(scratch: Path, grid: int) -> None:
    warm_up(scratch)
    config = grid_config(scratch / "project", grid)
    mosaic = PSOCTMosaicId(config.project_name, 1, 1)
    rows, columns = write_tiles(config, mosaic)
    modalities = len(config.enface_modalities)
    print(f"{grid} × {grid} tiles of {TILE} × {TILE}, {modalities} en-face modalities; "
          f"mosaic about {rows} × {columns} ({rows * columns * 4 / 2**20:.0f} MiB per float32 modality)")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.enable()
    result = finalise_mosaic(config.model_dump(mode="json"), mosaic.to_dict())
    profile.disable()
    seconds = time.perf_counter() - start
    print(f"finalise_mosaic: {seconds:.1f} s (placement: {result['placement']}); "
          f"peak RSS {before:.2f} GiB before, {peak_rss_gib():.2f} GiB after")
    cumulative = {func[2]: stats[3] for func, stats in pstats.Stats(profile).stats.items()}
    for phase, function in PHASES.items():
        spent = cumulative.get(function, 0.0)
        print(f"  {phase:26s} {spent:6.1f} s  {spent / seconds:5.1%} (profiled)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=int, default=20, help="tiles per side")
    parser.add_argument("--scratch", type=Path, default=None, help="an existing folder for the tiles and outputs")
    args = parser.parse_args()
    print(machine_line())
    scratch = Path(tempfile.mkdtemp(prefix="opticstream-bench-enface-", dir=args.scratch))
    try:
        run(scratch, args.grid)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
