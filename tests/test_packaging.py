"""The npe2 manifest must reach the installed package in both install modes."""

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _validate(python: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, "-m", "npe2", "validate", "--imports", "opticstream-napari"],
        capture_output=True, text=True, cwd="/", check=False,
    )


def test_editable_install_validates() -> None:
    result = _validate(sys.executable)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout


@pytest.mark.slow
def test_wheel_carries_the_manifest_and_validates(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--wheel", "-o", str(tmp_path), str(ROOT)],
        check=True, capture_output=True,
    )
    wheel = next(tmp_path.glob("*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read("opticstream_napari/napari.yaml") == (ROOT / "napari.yaml").read_bytes()
        entry_points = archive.read("opticstream_napari-0.1.0.dist-info/entry_points.txt").decode()
    assert "opticstream-napari = opticstream_napari:napari.yaml" in entry_points

    venv = tmp_path / "venv"
    uv = Path(sys.executable).with_name("uv")
    subprocess.run([str(uv), "venv", "-q", "-p", sys.executable, str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run([str(uv), "pip", "install", "-q", "-p", python, "--no-deps", str(wheel)], check=True)
    # The wheel's own copy comes first; the locked dependencies are borrowed from this venv.
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "zz_locked_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    where = subprocess.run(
        [python, "-c", "import opticstream_napari; print(opticstream_napari.__file__)"],
        capture_output=True, text=True, check=True, cwd="/",
    ).stdout
    assert where.startswith(str(venv))
    result = _validate(python)
    assert result.returncode == 0, result.stdout + result.stderr
