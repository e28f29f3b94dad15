
"""The engine on simulated PS-OCT acquisitions: live, on both backends, in processes, on dask, with failures."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
from engine_support import (
    SLICES,
    assert_event_sequence,
    assert_everything_completed,
    assert_same_outputs,
    direct_run,
    mosaics,
    outputs,
    run_engine,
    simulate,
    tiny_config,
)

from opticstream_napari import naming
from opticstream_napari.engine.executors import DaskExecutor, ProcessExecutor
from opticstream_napari.engine.messages import MosaicFinalised, RegionWritten, SliceDone, UnitCompleted, UnitFailed
from opticstream_napari.engine.pipelines.psoct_mosaic import live_path
from opticstream_napari.engine.runner import Until
from opticstream_napari.identity import PSOCTMosaicId, PSOCTSliceId, PSOCTTileId
from opticstream_napari.io.ome_zarr import open_pyramid
from opticstream_napari.simulate.live import Pace
from opticstream_napari.state.readiness import readiness
from opticstream_napari.state.service import StateService


def test_live_acquisition_is_processed_as_it_is_written(acquisition, database_url, direct_tiny) -> None:
    """The simulator writes two slices tile by tile while the engine watches; every node completes,
    outputs equal a direct single-pass run, and the event log holds the canonical sequence."""
    config, raw = acquisition
    writer = threading.Thread(target=simulate, args=(config, raw, Pace(0.04, pieces=2)))
    writer.start()
    run = run_engine(config, raw, database_url, until=Until.COMPLETE)
    writer.join()

    assert run.report.completed == 30 and not run.report.failed
    with StateService.connect(database_url) as state:
        names = [r.name for r in state.events()]
    last_ready = max(i for i, n in enumerate(names) if n.endswith("tile.ready"))
    assert any(n.endswith("tile.completed") for n in names[:last_ready]), "nothing was processed while acquiring"
    assert_everything_completed(database_url, config)
    assert_event_sequence(database_url, config)
    assert_same_outputs(outputs(config), direct_tiny)
    kinds = [type(m) for m in run.messages]
    assert kinds.count(MosaicFinalised) == 4 and kinds.count(SliceDone) == SLICES
    assert RegionWritten in kinds


def test_live_previews_grow_and_end_equal_to_the_final_mosaic(acquisition, database_url) -> None:
    config, raw = acquisition
    simulate(config, raw)
    run = run_engine(config, raw, database_url)
    mosaic = PSOCTMosaicId(config.project_name, 1, 1)
    regions = [m for m in run.messages if isinstance(m, RegionWritten) and m.mosaic == mosaic and m.modality == "aip"]
    finalised = next(i for i, m in enumerate(run.messages) if isinstance(m, MosaicFinalised) and m.mosaic == mosaic)
    assert len(regions) >= 2 and run.messages.index(regions[0]) < finalised
    assert all(r.region[1] - r.region[0] == config.acquisition.tile_size_y for r in regions)
    live = open_pyramid(live_path(config, mosaic, "aip")).read(0)
    final = open_pyramid(Path(next(m for m in run.messages if isinstance(m, MosaicFinalised)
                                   and m.mosaic == mosaic).outputs["aip"])).read(0)
    np.testing.assert_array_equal(live, final)


def test_registration_makes_a_template_that_later_slices_reuse(tmp_path: Path) -> None:
    """With overlaps wide enough to register, slice 1 saves one template per acquisition label
    and slice 2 is placed with it; the engine's mosaics equal a direct run's."""
    config = tiny_config(tmp_path / "engine", registrable=True)
    raw = tmp_path / "raw"
    simulate(config, raw)
    direct = tiny_config(tmp_path / "direct", registrable=True)
    shutil.copytree(config.project_base_path, direct.project_base_path)
    direct_run(direct, raw)
    url = f"sqlite:///{tmp_path / 'state.db'}"
    run_engine(config, raw, url)
    for label in ("normal", "tilted"):
        assert (config.project_base_path / naming.placement_template_name(label)).is_file()
    placements = {}
    with StateService.connect(url) as state:
        for record in state.events():
            if record.name.endswith("mosaic.enface_stitched"):
                placements[record.ident.mosaic] = record.payload["placement"]
    assert placements == {1: "registered", 2: "registered", 3: "template", 4: "template"}
    assert_same_outputs(outputs(config), outputs(direct))


def test_dask_cluster_of_worker_processes_gives_identical_outputs(acquisition, tmp_path, direct_tiny) -> None:
    config, raw = acquisition
    simulate(config, raw)
    executor = DaskExecutor(workers=2, threads_per_worker=1, task_threads=1, memory_limit="2GiB")
    try:
        assert executor.slots == 2
        run = run_engine(config, raw, f"sqlite:///{tmp_path / 'state.db'}", executor=executor)
    finally:
        executor.close()
    assert run.report.completed == 30 and not run.report.failed
    assert_same_outputs(outputs(config), direct_tiny)


def test_local_worker_processes_give_identical_outputs(acquisition, tmp_path, direct_tiny) -> None:
    """What the napari widget runs: the same tasks in spawned processes of this host."""
    config, raw = acquisition
    simulate(config, raw)
    executor = ProcessExecutor(2)
    try:
        run = run_engine(config, raw, f"sqlite:///{tmp_path / 'state.db'}", executor=executor)
    finally:
        executor.close()
    assert run.report.completed == 30 and not run.report.failed
    assert any(isinstance(m, RegionWritten) for m in run.messages), "live regions come back from the processes"
    assert_same_outputs(outputs(config), direct_tiny)


def test_a_truncated_tile_fails_blocks_its_mosaic_and_the_rest_goes_on(acquisition, database_url) -> None:
    config, raw = acquisition
    simulate(config, raw)
    broken = raw / naming.psoct_spectral_tile_name(1, 2)
    broken.write_bytes(broken.read_bytes()[: broken.stat().st_size // 2])
    run = run_engine(config, raw, database_url, incomplete_grace=0.3)

    tile = PSOCTTileId(config.project_name, 1, 1, 1, 2)
    failures = [m for m in run.messages if isinstance(m, UnitFailed)]
    assert [m.ident for m in failures] == [tile]
    assert "truncated file" in failures[0].error and broken.name in failures[0].error
    assert run.report.completed == 29
    with StateService.connect(database_url) as state:
        assert state.peek(tile).last_error == failures[0].error
        blocked = readiness(state, tile.parent.parent, config)
        assert not blocked.ready and [b.ident for b in blocked.failed] == [tile]
        assert "truncated file" in blocked.describe()
        done = {m for m in mosaics(config) if state.peek(m).state == "completed"}
        assert done == set(mosaics(config)) - {tile.parent.parent}
        assert state.peek(tile.parent.parent.parent).state == "pending"
        assert state.peek(PSOCTSliceId(config.project_name, 2)).state == "completed"


def test_unit_completed_messages_carry_each_tile_once(acquisition, database_url) -> None:
    config, raw = acquisition
    simulate(config, raw)
    run = run_engine(config, raw, database_url)
    tiles = [m.ident for m in run.messages if isinstance(m, UnitCompleted)]
    assert len(tiles) == len(set(tiles)) == 30
    again = run_engine(config, raw, database_url)
    assert again.report.completed == 0 and not [m for m in again.messages if isinstance(m, UnitCompleted)]
    forced = run_engine(config, raw, database_url, force=True)
    assert forced.report.completed == 30
    assert sum(isinstance(m, MosaicFinalised) for m in forced.messages) == 4
