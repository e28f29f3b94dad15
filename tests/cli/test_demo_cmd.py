import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import llvmlite.binding as llvm
import pytest

from opticstream_napari import naming
from opticstream_napari.cli import demo_cmd
from opticstream_napari.cli.demo_cmd import start_instrument
from opticstream_napari.cli.main import main
from opticstream_napari.cli.simulate_cmd import prepare_run
from opticstream_napari.engine.executors import spawn_context
from opticstream_napari.engine.priority import LOWEST
from opticstream_napari.engine.vector_width import ENV_VAR, wide_vectors_pay
from opticstream_napari.simulate.live import Pace


def test_headless_demo_simulates_and_processes_the_acquisition(tmp_path: Path) -> None:
    """Run as a command: its process runs only the engine, so its kernels get the vectors that pay."""
    pays = wide_vectors_pay(llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten())
    done = subprocess.run(
        [sys.executable, "-m", "opticstream_napari.cli.main", "-v", "demo", "--headless", "--size", "tiny",
         "--slices", "1", "--pace", "0", "--output", str(tmp_path)],
        capture_output=True, text=True, timeout=300, check=False,
        env={key: value for key, value in os.environ.items() if key != ENV_VAR},  # the default choice
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "scan config" in done.stdout and "acquired raw/mosaic_001_image_0001" in done.stdout
    assert "every slice is processed" in done.stdout
    assert f"numba kernels use {512 if pays else 256}-bit vectors" in done.stderr
    tiles = [p for p in (tmp_path / "raw").iterdir() if p.suffix in (".nii", ".raw")]
    assert tiles and all(naming.parse_psoct_raw_tile(p.name).mosaic in (1, 2) for p in tiles)


def test_a_demo_without_output_folder_removes_its_temporary_one(tmp_path: Path, monkeypatch, capsys) -> None:
    """A two-slice demo writes gigabytes: without --output its folder does not outlive it."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert main(["demo", "--headless", "--size", "tiny", "--slices", "1", "--pace", "0"]) == 0
    out = capsys.readouterr().out
    assert f"demo folder: {tmp_path}/opticstream-demo-" in out and "removed at exit" in out
    assert "every slice is processed" in out
    assert list(tmp_path.iterdir()) == []


def test_the_instrument_runs_in_its_own_process_at_the_lowest_priority_and_stops_when_asked(tmp_path: Path) -> None:
    run = prepare_run(tmp_path, "psoct", "tiny")
    stop = spawn_context().Event()
    instrument = start_instrument(run, 1, Pace(2.0, pieces=4), stop)
    try:
        deadline = time.monotonic() + 60
        while not any((tmp_path / "raw").glob("*.nii")) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert instrument.pid != os.getpid() and instrument.is_alive()
        nice = int(Path(f"/proc/{instrument.pid}/stat").read_text().rsplit(")", 1)[1].split()[16])
        assert nice == LOWEST
    finally:
        stop.set()
        instrument.join(5)
    assert instrument.exitcode == 0, "stop ends the acquisition between or inside files, within seconds"


def test_gui_demo_without_display_says_what_to_do(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["demo", "--size", "tiny", "--output", str(tmp_path)]) == 2
    assert "--headless" in capsys.readouterr().err


@pytest.mark.slow
def test_gui_demo_opens_napari_with_the_widget(tmp_path: Path) -> None:
    """The README's main command path: a real napari window under the session's X server."""
    if not os.environ.get("DISPLAY"):
        pytest.skip("needs the virtual display pytest-xvfb provides")
    result = subprocess.run(
        [sys.executable, "-m", "opticstream_napari.cli.main", "demo", "--size", "tiny", "--slices", "1",
         "--pace", "0", "--output", str(tmp_path), "--quit-after", "25"],
        capture_output=True, text=True, timeout=180, check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "acquired raw/" in result.stdout
    assert "24 layers made; processing raw/" in result.stdout, "Start waits for the project's layers"
    assert (tmp_path / "scan.yaml").is_file()



def test_ctrl_c_in_the_gui_demo_stops_the_instrument_before_the_demo_returns(
    tmp_path: Path, monkeypatch, qapp
) -> None:
    """The demo's folder is removed right after: an instrument still writing would leave files behind."""
    import napari

    started = []

    def instrument(*args):
        started.append(start_instrument(*args))
        return started[-1]

    def interrupted() -> None:
        deadline = time.monotonic() + 60
        while not any((tmp_path / "raw").glob("*.nii")) and time.monotonic() < deadline:
            time.sleep(0.1)
        raise KeyboardInterrupt

    monkeypatch.setattr(demo_cmd, "start_instrument", instrument)
    monkeypatch.setattr(napari, "run", interrupted)
    stop = spawn_context().Event()
    try:
        with pytest.raises(KeyboardInterrupt):
            demo_cmd._run_gui(prepare_run(tmp_path, "psoct", "tiny"), 1, Pace(2.0, pieces=4), stop, None)
    finally:
        viewer = napari.current_viewer()
        if viewer is not None:
            viewer.close()
    assert stop.is_set() and not started[0].is_alive()
