"""The engine's volume step: the focus plane fitted on the first slice and reused, and the 3D
volume mosaics as OME-Zarr pyramids that match the per-tile volumes at the fused positions.

One acquisition serves every test: a normal grid wide enough to fit the focus plane (see
``tiny_config(focusable=True)``), slice 1 processed by one engine run and slice 2 by another.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
import zarr
from engine_support import mosaics, run_engine, simulate, tiny_config
from PIL import Image

from opticstream_napari import naming
from opticstream_napari.config import PSOCTScanConfig, VolumeModality, ZarrConfig
from opticstream_napari.engine.pipelines import psoct_volume
from opticstream_napari.engine.pipelines.psoct import PSOCTPipeline
from opticstream_napari.engine.pipelines.psoct_mosaic import TileMaps, mosaic_tiles, stitched_folder
from opticstream_napari.engine.pipelines.psoct_tile import tile_output_path
from opticstream_napari.engine.pipelines.psoct_volume import focus_plane_path, fused_positions, stitch_volumes
from opticstream_napari.identity import PSOCTMosaicId
from opticstream_napari.io.nifti import load_focus_plane, read_enface_nifti
from opticstream_napari.io.ome_zarr import is_complete, open_pyramid
from opticstream_napari.io.psoct_outputs import TileVolume, read_volume_nifti, write_volume_zarr
from opticstream_napari.naming import parse_psoct_raw_tile
from opticstream_napari.processing.stitch import MosaicLayout, coverage, focus_crop
from opticstream_napari.simulate.psoct import PSOCTGroundTruth, load_psoct_ground_truth
from opticstream_napari.state.service import StateService

VOLUMES = ("dBI", "R3D", "O3D")


@dataclass
class FocusRun:
    config: PSOCTScanConfig
    truth: PSOCTGroundTruth
    url: str
    focus_after_slice_1: tuple[int, int, bytes]


def _stat(path: Path) -> tuple[int, int, bytes]:
    return path.stat().st_ino, path.stat().st_mtime_ns, path.read_bytes()


def _copy_mosaics(source: Path, raw: Path, wanted: set[int]) -> None:
    for path in source.iterdir():
        if path.is_file() and parse_psoct_raw_tile(path.name).mosaic in wanted:
            shutil.copy2(path, raw / path.name)


@pytest.fixture(scope="module")
def focus_run(tmp_path_factory: pytest.TempPathFactory) -> FocusRun:
    root = tmp_path_factory.mktemp("volumes")
    config = tiny_config(root, focusable=True)
    source, raw = root / "source", root / "raw"
    simulate(config, source)
    raw.mkdir()
    url = f"sqlite:///{root / 'state.db'}"
    _copy_mosaics(source, raw, {1, 2})
    run_engine(config, raw, url)
    first = _stat(focus_plane_path(config, "normal"))
    _copy_mosaics(source, raw, {3, 4})
    run_engine(config, raw, url)
    return FocusRun(config, load_psoct_ground_truth(source / naming.GROUND_TRUTH_FOLDER), url, first)


def test_the_focus_plane_is_fitted_on_the_first_slice_and_reused(focus_run: FocusRun) -> None:
    """Slice 1 fits and saves the normal plane; slice 2 reuses the file as it was. No tilted tile
    is bright enough to fit on: those volumes are cropped flat and nothing is saved."""
    config = focus_run.config
    with StateService.connect(focus_run.url) as state:
        focus = {r.ident.mosaic: r.payload["focus"] for r in state.events() if r.name.endswith("volume_stitched")}
    assert {m: f["source"] for m, f in focus.items()} == {1: "fitted", 2: "flat", 3: "stored", 4: "flat"}
    assert focus[3]["path"] == str(focus_plane_path(config, "normal")) and focus[4]["path"] is None
    assert _stat(focus_plane_path(config, "normal")) == focus_run.focus_after_slice_1, "rewritten for slice 2"
    assert not focus_plane_path(config, "tilted").exists()


def test_a_fit_is_recorded_in_the_focus_finding_folder_of_its_slice(focus_run: FocusRun) -> None:
    """Slice 1's fit leaves the tiles it considered (with their signal and whether they passed the
    threshold), the polynomial, the plane as NIfTI and a picture of it; reusing it on slice 2,
    or failing to fit (tilted), records nothing."""
    config = focus_run.config
    folder = config.project_base_path / "slice-01" / naming.FOCUS_FOLDER
    assert sorted(p.name for p in folder.iterdir()) == ["filtered_normal.yaml", "focus-normal.nii", "plane_normal.png"]
    record = yaml.safe_load((folder / "filtered_normal.yaml").read_text())
    assert record["bucket"] == "normal" and record["mosaic"] == 1
    threshold = config.focus_threshold("normal")
    assert record["threshold_db"] == threshold
    tiles = {t["tile"]: t for t in record["tiles"]}
    assert set(tiles) == {t.tile for t in mosaic_tiles(config, mosaics(config)[0])}
    maps = TileMaps(config, mosaics(config)[0])
    for number, entry in tiles.items():
        assert entry["mean_aip_db"] == pytest.approx(float(np.nanmean(maps(number, "aip"))), abs=1e-3)
        assert entry["used"] == (entry["mean_aip_db"] >= threshold)
    assert sum(t["used"] for t in tiles.values()) >= 2
    fit = record["fit"]
    assert fit["degree"] == 2 and len(fit["terms"]) == 5 and fit["overlap_samples"] > 1000
    plane = load_focus_plane(config.project_base_path, "normal")
    np.testing.assert_array_equal(load_focus_plane(folder, "normal"), plane)
    assert record["plane_samples"]["max"] == pytest.approx(float(plane.max()))
    picture = np.asarray(Image.open(folder / "plane_normal.png"))
    assert picture.shape == plane.shape and picture.min() == 0 and picture.max() == 255
    assert not (config.project_base_path / "slice-02" / naming.FOCUS_FOLDER).exists()


def test_the_fitted_focus_plane_recovers_the_simulated_field_curvature(focus_run: FocusRun) -> None:
    config = focus_run.config
    plane = load_focus_plane(config.project_base_path, "normal")
    acq = config.acquisition
    assert plane.shape == (acq.tile_size_y, acq.tile_size_x_normal)
    yy, xx = np.mgrid[0 : plane.shape[0], 0 : plane.shape[1]].astype(float)
    expected = focus_run.truth.curvature["normal"](xx, yy)
    expected -= expected.min()
    assert expected.max() > 3
    assert np.abs(plane - expected).max() < 1.0


def _cropped_tiles(config: PSOCTScanConfig, mosaic: PSOCTMosaicId, modality: str,
                   plane: np.ndarray) -> dict[int, np.ndarray]:
    """Each tile's whole volume, cropped along the plane as the volume mosaic should be."""
    tiles = {}
    for tile in mosaic_tiles(config, mosaic):
        volume = TileVolume(tile_output_path(config, tile, modality))
        samples = volume.read(*(slice(0, n) for n in volume.shape))
        tiles[tile.tile] = focus_crop(samples, plane, config.crop_focus_plane_offset, config.crop_focus_plane_depth)
    return tiles


@pytest.mark.parametrize("mosaic_number", [1, 3], ids=["fitted-plane", "stored-plane"])
def test_volume_mosaics_are_micrometre_pyramids_matching_the_tiles(focus_run: FocusRun, mosaic_number: int) -> None:
    """Each volume is a complete OME-Zarr 0.5 pyramid (z, y, x) in µm, as deep as the crop; where
    one tile covers the tissue it is that tile cropped along the focus plane, and in overlaps a
    blend of the tiles there (between their extremes); outside the mask it is empty."""
    config = focus_run.config
    mosaic = PSOCTMosaicId(config.project_name, (mosaic_number + 1) // 2, mosaic_number)
    folder = stitched_folder(config, mosaic.slice)
    plane = load_focus_plane(config.project_base_path, "normal")
    acq = config.acquisition
    layout = MosaicLayout.from_positions(fused_positions(config, mosaic), (acq.tile_size_y, acq.tile_size_x_normal),
                                         acq.tile_overlap / 100, depth=config.crop_focus_plane_depth)
    tissue = read_enface_nifti(folder / naming.mosaic_mask_name(mosaic.mosaic))[0] > 0
    covered = coverage(layout)
    single, overlap = tissue & (covered == 1), tissue & (covered > 1)
    assert single.sum() > 1000 and overlap.sum() > 500
    size_x, size_y, size_z = acq.scan_resolution_3d_um
    for modality in VOLUMES:
        path = folder / naming.mosaic_zarr_name(mosaic.mosaic, modality)
        assert is_complete(path)
        multiscale = zarr.open_group(str(path), mode="r").attrs["ome"]
        assert multiscale["version"] == "0.5"
        (ms,) = multiscale["multiscales"]
        assert [(a["name"], a["type"], a["unit"]) for a in ms["axes"]] == [
            (axis, "space", "micrometer") for axis in ("z", "y", "x")]
        assert ms["datasets"][0]["coordinateTransformations"][0]["scale"] == [size_z, size_y, size_x]
        assert len(ms["datasets"]) >= 2
        pyramid = open_pyramid(path)
        assert pyramid.shape == (config.crop_focus_plane_depth, *read_enface_nifti(
            folder / naming.mosaic_enface_nifti_name(mosaic.mosaic, "aip"))[0].shape)
        assert pyramid.reduction == ("circular_180" if modality == "O3D" else "mean")
        found = pyramid.read(0)
        assert np.isnan(found[:, ~tissue]).all()
        tiles = _cropped_tiles(config, mosaic, modality, plane)
        low = np.full(found.shape, np.inf, np.float32)
        high = np.full(found.shape, -np.inf, np.float32)
        alone = np.full(found.shape, np.nan, np.float32)
        for tile, values in tiles.items():
            region = layout.tile_region(tile)
            low[region] = np.fmin(low[region], values)
            high[region] = np.fmax(high[region], values)
            alone[region] = np.where((covered[region[1:]] == 1)[None], values, alone[region])
        if modality == "O3D":
            difference = np.abs((found[:, single] - alone[:, single] + 90) % 180 - 90)
            assert np.nanmax(difference) < 1e-3
        else:
            np.testing.assert_array_equal(found[:, single], alone[:, single])
            inside = np.isfinite(found[:, overlap])
            assert inside.mean() > 0.5
            assert (found[:, overlap][inside] >= low[:, overlap][inside] - 1e-3).all()
            assert (found[:, overlap][inside] <= high[:, overlap][inside] + 1e-3).all()


def test_volume_step_writes_on_the_threads_its_task_was_given(
    focus_run: FocusRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The executor splits the cores between its tasks; the volume step's parallel units stay in
    that share instead of taking every core of the host."""
    config = focus_run.config.model_copy(deep=True)
    config.project_base_path = tmp_path / "project"
    shutil.copytree(focus_run.config.project_base_path, config.project_base_path,
                    ignore=shutil.ignore_patterns("*.ome.zarr", "state.db*"))
    config.volume_modalities = [VolumeModality.O3D]
    given = []
    write = psoct_volume.write_pyramid

    def recording(*args, **kwargs):
        given.append(kwargs["cores"])
        return write(*args, **kwargs)

    monkeypatch.setattr(psoct_volume, "write_pyramid", recording)
    stitch_volumes(config.model_dump(mode="json"), mosaics(config)[0].to_dict(), 3)
    stitch_volumes(config.model_dump(mode="json"), mosaics(config)[0].to_dict())
    assert given == [3, None]

    with StateService.connect(f"sqlite:///{tmp_path / 'state.db'}") as state:
        pipeline = PSOCTPipeline(config, config.project_base_path, state, lambda _message: None, task_threads=3)
        (job,) = pipeline._check_volumes(mosaics(config)[0])
    assert job.fn is stitch_volumes and job.args[2] == 3


def test_volume_mosaics_are_idempotent_and_independent_of_slabs_and_chunks(
    focus_run: FocusRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Re-running gives the same bytes; thin depth slabs and small write units give the same mosaic
    (checked on O3D, whose circular blend is the most sensitive to the order of the sums)."""
    config = focus_run.config
    mosaic = mosaics(config)[0]
    paths = [stitched_folder(config, mosaic.slice) / naming.mosaic_zarr_name(mosaic.mosaic, m) for m in VOLUMES]
    before = [[open_pyramid(p).read(level) for level in range(len(open_pyramid(p).levels))] for p in paths]
    stitch_volumes(config.model_dump(mode="json"), mosaic.to_dict())
    for path, levels in zip(paths, before, strict=True):
        for level, values in enumerate(levels):
            np.testing.assert_array_equal(open_pyramid(path).read(level), values)

    small = config.model_copy(deep=True)
    small.project_base_path = tmp_path / "project"
    shutil.copytree(config.project_base_path, small.project_base_path,
                    ignore=shutil.ignore_patterns("*.ome.zarr", "state.db*"))
    small.zarr_config, small.volume_modalities = ZarrConfig(chunk=16, shard=64), [VolumeModality.O3D]
    monkeypatch.setattr(psoct_volume, "_SLAB_BYTES", 1 << 20)
    result = stitch_volumes(small.model_dump(mode="json"), mosaic.to_dict())
    assert result["focus"]["source"] == "stored"
    pyramid = open_pyramid(result["outputs"]["O3D"])
    assert len(pyramid.write_units()) > 10
    np.testing.assert_array_equal(pyramid.read(0), before[VOLUMES.index("O3D")][0])


def test_volume_mosaics_from_zarr_tile_volumes_equal_those_from_nifti(focus_run: FocusRun, tmp_path: Path) -> None:
    """With ``volume_format: zarr`` the stitcher reads per-tile OME-Zarr volumes: the same tiles
    stored that way give the same volume mosaics."""
    config = focus_run.config
    mosaic = mosaics(config)[0]
    expected = {m: open_pyramid(stitched_folder(config, mosaic.slice) / naming.mosaic_zarr_name(mosaic.mosaic, m))
                .read(0) for m in VOLUMES}
    as_zarr = config.model_copy(deep=True)
    as_zarr.project_base_path = tmp_path / "project"
    shutil.copytree(config.project_base_path, as_zarr.project_base_path,
                    ignore=shutil.ignore_patterns("*.ome.zarr", "state.db*"))
    as_zarr.processing.volume_format = "zarr"
    for tile in mosaic_tiles(config, mosaic):
        for modality in VOLUMES:
            nifti = tile_output_path(config, tile, modality)
            volume, voxel = read_volume_nifti(nifti)
            target = tile_output_path(as_zarr, tile, modality)
            assert target.name.endswith(".ome.zarr")
            write_volume_zarr(target, volume, voxel)
            (as_zarr.project_base_path / nifti.relative_to(config.project_base_path)).unlink()
    result = stitch_volumes(as_zarr.model_dump(mode="json"), mosaic.to_dict())
    for modality in VOLUMES:
        np.testing.assert_array_equal(open_pyramid(result["outputs"][modality]).read(0), expected[modality])
