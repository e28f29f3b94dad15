from pathlib import Path

import nibabel as nib
import pytest

from opticstream_napari import naming
from opticstream_napari.cli.main import main
from opticstream_napari.config import LSMScanConfig, PSOCTScanConfig, load_config
from opticstream_napari.simulate.psoct import load_psoct_ground_truth


@pytest.mark.parametrize("fmt", ["spectral", "spectral_12bit", "complex"])
def test_simulate_psoct_writes_config_raw_tiles_and_truth(tmp_path: Path, fmt: str, capsys) -> None:
    assert main(["simulate", "psoct", str(tmp_path), "--size", "tiny", "--slices", "2", "--format", fmt]) == 0
    config = load_config(tmp_path / "scan.yaml")
    assert isinstance(config, PSOCTScanConfig)
    assert config.acquisition.tile_saving_type.value == fmt
    raw = sorted(p for p in (tmp_path / "raw").iterdir() if p.is_file())
    acq = config.acquisition
    per_slice = acq.grid_size_y * (acq.grid_size_x_normal + acq.grid_size_x_tilted)
    assert len(raw) == 2 * per_slice
    ids = {naming.parse_psoct_raw_tile(p.name).identity(config.project_name, 2, acq.grid_size_y) for p in raw}
    assert len(ids) == len(raw) and {i.slice for i in ids} == {1, 2}
    first = tmp_path / "raw" / naming.psoct_spectral_tile_name(1, 1, packed_12bit=fmt == "spectral_12bit")
    if fmt == "spectral":
        assert nib.load(first).shape == (acq.spectral_length, acq.tile_size_x_normal, 2, acq.tile_size_y)
    elif fmt == "complex":
        depth = acq.spectral_length // 2 - config.processing.autocorr_cut
        complex_tile = tmp_path / "raw" / naming.psoct_complex_tile_name(1, 1)
        assert nib.load(complex_tile).shape == (4 * acq.tile_size_x_normal, acq.tile_size_y, depth)
    else:
        assert first.stat().st_size == acq.tile_size_y * 2 * acq.tile_size_x_normal * acq.spectral_length * 3 // 2
    truth = load_psoct_ground_truth(tmp_path / "raw" / naming.GROUND_TRUTH_FOLDER)
    assert {plan.mosaic for plan in truth.mosaics} == {1, 2, 3, 4}
    assert (config.project_base_path / naming.CALIBRATION_FILE).is_file()
    assert f"{len(raw)} raw items" in capsys.readouterr().out


def test_simulate_lsm(tmp_path: Path) -> None:
    assert main(["simulate", "lsm", str(tmp_path), "--size", "tiny"]) == 0
    config = load_config(tmp_path / "scan.yaml")
    assert isinstance(config, LSMScanConfig)
    folders = sorted(p for p in (tmp_path / "raw").iterdir() if p.is_dir() and p.name != naming.GROUND_TRUTH_FOLDER)
    assert len(folders) == config.strips_per_slice * 2
    parsed = {naming.parse_lsm_strip_folder(f.name).identity(config.project_name) for f in folders}
    assert {s.channel for s in parsed} == {1, 2}
    assert all(len(list(f.iterdir())) > config.min_strip_files for f in folders)


def test_unknown_command_is_a_usage_error(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["simulate", "ct", "/tmp/x"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
