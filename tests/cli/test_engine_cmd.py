"""`opticstream watch|process|status|retry`: outcomes and exit codes scripts can rely on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import llvmlite.binding as llvm
import pytest

from opticstream_napari import naming
from opticstream_napari.cli.main import main
from opticstream_napari.cli.simulate_cmd import SimulatedRun, iter_acquisition, prepare_run
from opticstream_napari.engine.vector_width import ENV_VAR, wide_vectors_pay
from opticstream_napari.identity import PSOCTTileId
from opticstream_napari.simulate.live import INSTANT
from opticstream_napari.state.service import StateService

FAST = ["--poll-interval", "0.05", "--heartbeat-timeout", "2"]


@pytest.fixture
def simulated(tmp_path: Path) -> SimulatedRun:
    run = prepare_run(tmp_path, "psoct", "tiny")
    for _ in iter_acquisition(run, slices=1, seed=0, pace=INSTANT):
        pass
    return run


def _cli(*args: str | Path) -> int:
    return main([str(a) for a in args])


def test_process_then_status(simulated: SimulatedRun, capsys) -> None:
    assert _cli("process", simulated.config_path, simulated.raw_folder, *FAST) == 0
    err = capsys.readouterr().err
    assert "15 units done, 0 running, 0 failed | 2 stitched | 1 slices" in err
    assert _cli("status", simulated.config_path) == 0
    out = capsys.readouterr().out
    assert "slice  done  mosaics  batches  tiles  notes" in out
    assert "1      yes   2/2      5/5      15/15  complete" in out
    log = simulated.config.project_base_path / naming.LOG_FOLDER / naming.LOG_FILE
    assert "process sub-sim_voi-tiny" in log.read_text()


def test_a_failed_tile_exits_3_and_retry_runs_just_that_tile(simulated: SimulatedRun, capsys) -> None:
    broken = simulated.raw_folder / naming.psoct_spectral_tile_name(2, 5)
    original = broken.read_bytes()
    broken.write_bytes(original[:1000])
    assert _cli("process", simulated.config_path, simulated.raw_folder, *FAST) == 3
    assert "slice=1/mosaic=2/batch=2/tile=5: RawTileError" in capsys.readouterr().err
    assert _cli("status", simulated.config_path) == 3
    out = capsys.readouterr().out
    assert "1 tiles failed" in out and "failed: slice=1 mosaic=2 batch=2 tile=5: RawTileError" in out

    broken.write_bytes(original)
    assert _cli("retry", simulated.config_path, "--slice", "1", "--mosaic", "2", "--tile", "5",
                "--heartbeat-timeout", "2") == 0
    assert _cli("status", simulated.config_path) == 0
    project = simulated.config.project_name
    with StateService.for_config(simulated.config) as state:
        tiles = {v.ident: v for b in state.children(PSOCTTileId(project, 1, 2, 2, 5).parent.parent)
                 for v in state.children(b.ident)}
        assert tiles[PSOCTTileId(project, 1, 2, 2, 5)].attempts == 2
        assert {v.attempts for ident, v in tiles.items() if ident.tile != 5} == {1}


def test_watch_until_complete(simulated: SimulatedRun) -> None:
    args = ("watch", simulated.config_path, simulated.raw_folder, "--stability-seconds", "0.1", "--until-complete", "1")
    assert _cli(*args, *FAST) == 0


def test_usage_errors_exit_2(simulated: SimulatedRun, tmp_path: Path, capsys) -> None:
    config, raw = simulated.config_path, simulated.raw_folder
    assert _cli("process", tmp_path / "missing.yaml", raw) == 2
    assert _cli("process", config, tmp_path / "no-such-folder") == 2
    assert _cli("process", config, raw, "--mosaic-ranges", "3:1") == 2
    assert _cli("retry", config, "--slice", "1") == 2
    assert _cli("retry", config, "--slice", "1", "--mosaic", "1", "--batch", "1", "--tile", "5") == 2
    assert _cli("retry", config, "--slice", "9", "--mosaic", "17", "--tile", "1") == 2
    assert "no such tile" in capsys.readouterr().err


def test_a_headless_run_gives_its_kernels_the_vectors_that_pay(simulated: SimulatedRun) -> None:
    """The command's process runs only the engine, so it chooses numba's width before compiling."""
    pays = wide_vectors_pay(llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten())
    command = [sys.executable, "-m", "opticstream_napari.cli.main", "-v", "process", simulated.config_path,
               simulated.raw_folder, *FAST]
    env = {key: value for key, value in os.environ.items() if key != ENV_VAR}  # the default choice
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"numba kernels use {512 if pays else 256}-bit vectors" in done.stderr


def test_a_wrong_vector_width_is_a_usage_error(simulated: SimulatedRun, monkeypatch, capsys) -> None:
    monkeypatch.setenv(ENV_VAR, "widest")
    assert _cli("process", simulated.config_path, simulated.raw_folder, *FAST) == 2
    assert f"{ENV_VAR} must be one of auto, 256, 512, found 'widest'" in capsys.readouterr().err
