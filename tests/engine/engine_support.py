"""Helpers of the engine tests: simulated acquisitions, engine runs, a direct single-pass run,
and comparisons of their outputs and event logs (imported by name; conftest puts this folder on
the path)."""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from opticstream_napari import naming
from opticstream_napari.config import PSOCTScanConfig, TileSavingType
from opticstream_napari.engine.executors import Executor, LocalExecutor
from opticstream_napari.engine.messages import EngineMessage
from opticstream_napari.engine.pipelines.psoct_mosaic import finalise_mosaic, mosaic_tiles, stitched_folder
from opticstream_napari.engine.pipelines.psoct_tile import input_kind, process_tile, tile_output_path
from opticstream_napari.engine.pipelines.psoct_volume import focus_plane_path, stitch_volumes, stitches_volumes
from opticstream_napari.engine.runner import Engine, RunReport, Until
from opticstream_napari.identity import PSOCTMosaicId
from opticstream_napari.io.nifti import read_enface_nifti
from opticstream_napari.io.ome_zarr import open_pyramid
from opticstream_napari.layout import mosaics_of_slice
from opticstream_napari.naming import parse_psoct_raw_tile
from opticstream_napari.simulate.live import INSTANT, Pace
from opticstream_napari.simulate.psoct import iter_simulate_psoct, psoct_preset
from opticstream_napari.state.hierarchy import ProjectKey
from opticstream_napari.state.service import StateService

SLICES = 2
FAST = {"stability_seconds": 0.2, "poll_interval": 0.05, "incomplete_grace": 1.0,
        "heartbeat_interval": 0.2, "heartbeat_timeout": 1.0}


def tiny_config(root: Path, *, registrable: bool = False, focusable: bool = False) -> PSOCTScanConfig:
    """The tiny preset (normal 2×3 and tilted 3×3 grids); ``registrable`` widens the tiles so the
    overlaps (8 px and more) can be registered and a placement template is made.

    ``focusable`` makes a normal 3×3 grid of 64-px tiles overlapping by 30 % (19 columns, 4 of
    them past the focus fit's 15-column crop), saved as complex tiles to simulate faster, with a
    focus threshold that keeps the tissue tiles: the normal focus plane can be fitted. No tilted
    tile reaches the tilted focus threshold, so that plane cannot be.
    """
    config = psoct_preset(root / "project", "tiny")
    acq = config.acquisition
    if registrable:
        acq.tile_size_x_normal, acq.tile_size_x_tilted, acq.tile_size_y, acq.tile_overlap = 40, 32, 32, 25.0
    if focusable:
        acq.tile_size_x_normal, acq.tile_size_x_tilted, acq.tile_size_y, acq.tile_overlap = 64, 16, 64, 30.0
        acq.grid_size_x_normal, acq.tile_saving_type = 3, TileSavingType.COMPLEX
        config.focus_threshold_normal, config.focus_threshold_tilted = 50.0, 200.0
    return config


def simulate(config: PSOCTScanConfig, raw: Path, pace: Pace = INSTANT,
             stop: threading.Event | None = None) -> list[Path]:
    return list(iter_simulate_psoct(config, raw, slices=SLICES, seed=3, pace=pace, stop=stop))


@dataclass
class Run:
    report: RunReport
    messages: list[EngineMessage] = field(default_factory=list)
    acquired_at: float = 0.0


def run_engine(config: PSOCTScanConfig, raw: Path, url: str, *, executor: Executor | None = None,
               until: Until = Until.IDLE, timeout: float = 120.0, **options: object) -> Run:
    """One engine run on a fresh state connection; ``options`` override :data:`FAST`."""
    state = StateService.connect(url)
    own = executor is None
    executor = executor or LocalExecutor(2)
    try:
        engine = Engine(config, raw, state, executor, **{**FAST, **options})  # type: ignore[arg-type]
        messages: list[EngineMessage] = []
        engine.add_listener(messages.append)
        guard = threading.Timer(timeout, engine.stop)
        guard.start()
        try:
            report = engine.run(until=until, slices=SLICES)
        finally:
            guard.cancel()
        assert not report.stopped, f"the engine did not finish within {timeout} s"
        return Run(report, messages)
    finally:
        if own:
            executor.close()
        state.close()


def project_of(config: PSOCTScanConfig) -> ProjectKey:
    return ProjectKey("psoct", config.project_name)


def mosaics(config: PSOCTScanConfig) -> list[PSOCTMosaicId]:
    return [PSOCTMosaicId(config.project_name, s, m)
            for s in range(1, SLICES + 1) for m in mosaics_of_slice(s, config.mosaics_per_slice)]


def direct_run(config: PSOCTScanConfig, raw: Path) -> None:
    """Every tile, then every mosaic, one after the other, without state or engine."""
    data = config.model_dump(mode="json")
    acq = config.acquisition
    for path in sorted(raw.iterdir()):
        try:
            parsed = parse_psoct_raw_tile(path.name)
        except ValueError:
            continue
        if parsed.kind is input_kind(config):
            tile = parsed.identity(config.project_name, config.mosaics_per_slice, acq.grid_size_y)
            process_tile(data, tile.to_dict(), str(path), None)
    for mosaic in mosaics(config):
        finalise_mosaic(data, mosaic.to_dict())
        if stitches_volumes(config):
            stitch_volumes(data, mosaic.to_dict())


def outputs(config: PSOCTScanConfig) -> dict[str, np.ndarray]:
    """Every final output array by a name independent of the project folder."""
    found: dict[str, np.ndarray] = {}
    for mosaic in mosaics(config):
        folder = stitched_folder(config, mosaic.slice)
        for modality in (m.value for m in config.enface_modalities):
            found[f"{mosaic.mosaic}/{modality}.zarr"] = open_pyramid(
                folder / naming.mosaic_zarr_name(mosaic.mosaic, modality)).read(0)
            found[f"{mosaic.mosaic}/{modality}.nii"] = read_enface_nifti(
                folder / naming.mosaic_enface_nifti_name(mosaic.mosaic, modality))[0]
            for tile in mosaic_tiles(config, mosaic):
                found[f"{mosaic.mosaic}/{tile.tile}/{modality}"] = read_enface_nifti(
                    tile_output_path(config, tile, modality))[0]
        found[f"{mosaic.mosaic}/mask"] = read_enface_nifti(folder / naming.mosaic_mask_name(mosaic.mosaic))[0]
        if stitches_volumes(config):
            for modality in (m.value for m in config.volume_modalities):
                found[f"{mosaic.mosaic}/{modality}.zarr"] = open_pyramid(
                    folder / naming.mosaic_zarr_name(mosaic.mosaic, modality)).read(0)
        found[f"{mosaic.mosaic}/coords"] = np.asarray(
            (folder / naming.mosaic_tile_coords_name(mosaic.mosaic)).read_text().split())
    for bucket in ("normal", "tilted"):
        if focus_plane_path(config, bucket).is_file():
            found[f"focus-{bucket}"] = read_enface_nifti(focus_plane_path(config, bucket))[0]
    return found


def assert_same_outputs(found: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    """Bit-identical outputs (NaN where NaN): every process plans its FFTs from the shared wisdom."""
    assert found.keys() == expected.keys()
    for name, values in expected.items():
        np.testing.assert_array_equal(found[name], values, err_msg=name)


def assert_everything_completed(url: str, config: PSOCTScanConfig) -> None:
    from opticstream_napari.state.summary import summarize

    with StateService.connect(url) as state:
        summaries = summarize(state, project_of(config))
    assert sorted(summaries) == list(range(1, SLICES + 1))
    for summary in summaries.values():
        for level, counts in summary.counts.items():
            assert counts["completed"] == summary.total(level) > 0, (summary.slice, level, counts)


def event_names(url: str, config: PSOCTScanConfig) -> dict[object, list[str]]:
    """Each node's event states in log order, e.g. ``{tile: ["pending", "ready", "running", "completed"]}``."""
    with StateService.connect(url) as state:
        records = state.events(project_of(config))
    by_node: dict[object, list[str]] = defaultdict(list)
    for record in records:
        by_node[record.ident].append(record.name.rsplit(".", 1)[1])
    by_node["__order__"] = [(r.ident, r.name.rsplit(".", 1)[1]) for r in records]  # type: ignore[assignment]
    return by_node


def assert_event_sequence(url: str, config: PSOCTScanConfig) -> None:
    """The canonical sequence of every node, and the order between levels."""
    events = event_names(url, config)
    order = {entry: index for index, entry in enumerate(events.pop("__order__"))}  # type: ignore[arg-type]
    levels = defaultdict(list)
    for ident, names in events.items():
        levels[ident.level].append((ident, names))  # type: ignore[attr-defined]
    assert all(names == ["pending", "ready", "running", "completed"] for _, names in levels["tile"])
    assert all(names == ["pending", "completed", "processed"] for _, names in levels["batch"])
    stitched = ["enface_stitched", "volume_stitched"] if stitches_volumes(config) else ["enface_stitched"]
    assert all(names == ["pending", "ready", "running", *stitched, "completed"] for _, names in levels["mosaic"])
    assert all(names == ["pending", "ready", "completed"] for _, names in levels["slice"])
    for tile, _ in levels["tile"]:
        assert order[(tile, "completed")] < order[(tile.parent, "completed")]
        assert order[(tile.parent, "completed")] < order[(tile.parent.parent, "ready")]
    for mosaic, _ in levels["mosaic"]:
        assert order[(mosaic, "enface_stitched")] < order[(mosaic.parent, "ready")]
