import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from opticstream_napari import naming
from opticstream_napari.cli.main import main


def test_headless_demo_simulates_the_acquisition(tmp_path: Path, capsys) -> None:
    code = main(["demo", "--headless", "--size", "tiny", "--slices", "1", "--pace", "0", "--output", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "scan config" in out and "acquired raw/mosaic_001_image_0001" in out
    assert "every slice is processed" in out
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
