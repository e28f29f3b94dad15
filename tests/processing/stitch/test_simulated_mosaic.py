"""Stitching simulated PS-OCT tiles end to end: reconstruct, place, fuse, mask, focus plane.

References: the simulator's true tile positions; its per-tile truth maps fused at the same
positions (isolates reconstruction and blending from the half-pixel rounding of positions);
its tissue mask and field curvature.
"""

from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import binary_erosion

from opticstream_napari import naming
from opticstream_napari.config import TileSavingType
from opticstream_napari.io.psoct_raw import TileGeometry, read_complex_tile
from opticstream_napari.layout import Grid
from opticstream_napari.processing.psoct import reconstruct_complex_tile
from opticstream_napari.processing.psoct.settings import enface_params, spectral_params
from opticstream_napari.processing.stitch import TileStatus, fit_focus_plane, place_tiles
from opticstream_napari.processing.stitch.mosaic import fuse_enface
from opticstream_napari.simulate.psoct import psoct_preset, simulate_psoct

MODALITIES = ("aip", "ret", "ori", "biref")


class Simulated:
    def __init__(self, root: Path, columns: int, rows: int, size: int, overlap: float) -> None:
        config = psoct_preset(root / "project", "tiny", tile_saving_type=TileSavingType.COMPLEX)
        acq = config.acquisition
        acq.tile_size_x_normal = acq.tile_size_y = size
        acq.grid_size_x_normal, acq.grid_size_y, acq.tile_overlap = columns, rows, overlap
        self.config = config
        self.truth = simulate_psoct(config, root / "raw", slices=1, jitter_px=1.5, seed=7)
        self.grid = Grid(columns, rows)
        self.size = size
        self.overlap = overlap / 100
        depth = acq.spectral_length // 2 - config.processing.autocorr_cut
        geometry = TileGeometry(size, size, acq.spectral_length, depth)
        self.maps = {}
        for image in range(1, self.grid.tile_count + 1):
            tile = read_complex_tile(root / "raw" / naming.psoct_complex_tile_name(1, image), geometry)
            result = reconstruct_complex_tile(tile.j1.transpose(1, 0, 2), tile.j2.transpose(1, 0, 2),
                                              spectral_params(config), enface_params(config))
            self.maps[image] = result.enface
        self.true_tiles = {name: self.truth.tile_maps(1, name) for name in (*MODALITIES, "surface")}

    def true_positions(self) -> dict[int, tuple[float, float]]:
        return {t.image: (t.true[1], t.true[0]) for t in self.truth.mosaic(1).tiles}

    def true_map(self, image: int, name: str) -> np.ndarray:
        return self.true_tiles[name][image - 1].T.astype(np.float32)


@pytest.fixture(scope="module", params=[(3, 3, 80, 20.0), (4, 2, 64, 30.0)], ids=["3x3-20pct", "4x2-30pct"])
def simulated(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Simulated:
    return Simulated(tmp_path_factory.mktemp("mosaic"), *request.param)


def _rms_error(found: dict[int, tuple[float, float]], true: dict[int, tuple[float, float]]) -> float:
    diff = np.array([np.subtract(found[k], true[k]) for k in true])
    diff -= diff.mean(axis=0)
    return float(np.sqrt((diff**2).sum(axis=1).mean()))


def test_placement_recovers_the_jittered_positions(simulated: Simulated) -> None:
    placement = place_tiles({k: v["aip"] for k, v in simulated.maps.items()}, simulated.grid, simulated.overlap)
    assert set(placement.status.values()) == {TileStatus.REGISTERED}
    assert _rms_error(placement.positions, simulated.true_positions()) <= 0.2
    assert _rms_error(placement.nominal, simulated.true_positions()) > 0.5


def test_mosaic_matches_the_truth_and_the_mask_the_tissue(simulated: Simulated) -> None:
    placement = place_tiles({k: v["aip"] for k, v in simulated.maps.items()}, simulated.grid, simulated.overlap)
    shape = (simulated.size, simulated.size)
    threshold = simulated.config.mask_threshold("normal")
    ours = fuse_enface(lambda t, m: simulated.maps[t][m], placement.positions, shape, simulated.overlap,
                       MODALITIES, mask_threshold=threshold, mask=False)
    truth = fuse_enface(simulated.true_map, placement.positions, shape, simulated.overlap, MODALITIES)
    window_agrees = fuse_enface(
        lambda t, m: (simulated.maps[t]["surf"] == simulated.true_map(t, "surface")).astype(np.float32),
        placement.positions, shape, simulated.overlap, ["same"]).maps["same"] == 1
    tissue = fuse_enface(lambda t, m: simulated.true_map(t, "aip"), placement.positions, shape,
                         simulated.overlap, ["aip"], mask_threshold=threshold).mask > 0
    inside = binary_erosion(tissue, iterations=3) & window_agrees
    assert inside.sum() > 2000
    errors = {}
    for name in MODALITIES:
        diff = ours.maps[name] - truth.maps[name]
        if name == "ori":
            diff = (diff + 90) % 180 - 90
        if name == "biref":
            diff = diff / truth.maps[name]
        errors[name] = np.abs(diff[inside])
    assert errors["aip"].max() < 0.05
    assert errors["ret"].max() < 0.2
    assert errors["ori"].max() < 1.0
    assert errors["biref"].max() < 0.05
    near_wrap = inside & (np.abs(truth.maps["ori"]) > 80)
    assert near_wrap.sum() > 20, "the simulated orientation must cross the ±90° wrap"
    assert np.abs((ours.maps["ori"] - truth.maps["ori"] + 90) % 180 - 90)[near_wrap].max() < 1.0
    found = ours.mask > 0
    assert (found & tissue).sum() / (found | tissue).sum() >= 0.98


def test_missing_and_textureless_tiles(simulated: Simulated) -> None:
    centre = simulated.grid.tile_at(simulated.grid.rows // 2, simulated.grid.columns // 2)
    aips = {k: v["aip"] for k, v in simulated.maps.items()}
    aips[centre] = np.full_like(aips[centre], 80.0)
    placement = place_tiles(aips, simulated.grid, simulated.overlap)
    assert placement.status[centre] is TileStatus.FALLBACK
    true = simulated.true_positions()
    others = {k: v for k, v in true.items() if k != centre}
    assert _rms_error({k: placement.positions[k] for k in others}, others) <= 0.2
    offset = np.mean([np.subtract(placement.positions[k], true[k]) for k in others], axis=0)
    assert np.abs(np.subtract(placement.positions[centre], true[centre]) - offset).max() < 2.5

    missing = dict(aips)
    del missing[centre]
    gap = place_tiles(missing, simulated.grid, simulated.overlap)
    assert gap.status[centre] is TileStatus.MISSING
    mosaic = fuse_enface(lambda t, m: None if t == centre else simulated.maps[t][m], gap.positions,
                         (simulated.size, simulated.size), simulated.overlap, ["ret"])
    y, x = mosaic.layout.offsets[centre]
    ramp = int(simulated.overlap * simulated.size)
    core = slice(ramp + 2, simulated.size - ramp - 2)
    assert np.isnan(mosaic.maps["ret"][y:y + simulated.size, x:x + simulated.size][core, core]).all()
    assert np.isfinite(mosaic.maps["ret"]).mean() > 0.8


def test_focus_plane_recovers_the_field_curvature(simulated: Simulated) -> None:
    placement = place_tiles({k: v["aip"] for k, v in simulated.maps.items()}, simulated.grid, simulated.overlap)
    layout = fuse_enface(lambda t, m: simulated.maps[t][m], placement.positions, (simulated.size,) * 2,
                         simulated.overlap, ["surf"]).layout
    plane = fit_focus_plane({k: v["surf"] for k, v in simulated.maps.items()}, layout.offsets).plane()
    yy, xx = np.mgrid[0:simulated.size, 0:simulated.size].astype(float)
    expected = simulated.truth.curvature["normal"](xx, yy)
    expected -= expected.min()
    assert expected.max() > 3
    assert np.abs(plane - expected).max() < 1.0
