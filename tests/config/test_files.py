from pathlib import Path

import pytest
import yaml

from opticstream_napari.config import (
    Codec,
    ConfigError,
    EnfaceModality,
    LSMScanConfig,
    PSOCTScanConfig,
    load_config,
    parse_config,
    save_config,
)


@pytest.fixture
def psoct_config(tmp_path: Path) -> PSOCTScanConfig:
    return PSOCTScanConfig(
        project_name="sub-I80_voi-slab2",
        project_base_path=tmp_path / "project",
        acquisition={"grid_size_x_normal": 4, "grid_size_x_tilted": 6, "grid_size_y": 5},
        processing={"disp_comp_file": tmp_path / "disp.dat", "phase_offset_deg": 90.0},
        enface_modalities=[EnfaceModality.AIP, EnfaceModality.ORI],
        zarr_config={"codec": "lz4", "shard": None},
    )


@pytest.fixture
def lsm_config(tmp_path: Path) -> LSMScanConfig:
    return LSMScanConfig(
        project_name="lsm_demo",
        project_base_path=tmp_path / "lsm",
        cpu_affinity=(2, 8),
        output_mip_preview_window=(10, 500),
    )


@pytest.mark.parametrize("name", ["psoct_config", "lsm_config"])
def test_round_trip_is_lossless(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    config = request.getfixturevalue(name)
    path = save_config(config, tmp_path / "scan.yaml")
    loaded = load_config(path)
    assert loaded == config
    assert type(loaded) is type(config)
    save_config(loaded, tmp_path / "again.yaml")
    assert (tmp_path / "again.yaml").read_text() == path.read_text()


def test_defaults_follow_the_spec_with_its_defects_fixed(psoct_config: PSOCTScanConfig) -> None:
    processing = PSOCTScanConfig(
        project_name="p", project_base_path="/p",
        acquisition={"grid_size_x_normal": 1, "grid_size_x_tilted": 1, "grid_size_y": 1},
    ).processing
    assert processing.surface_spec == "gradient"
    assert processing.disp_comp_file is None
    assert processing.phase_offset_deg == 100.0
    assert psoct_config.acquisition.scan_resolution_3d_um == (10.0, 10.0, 2.5)
    assert psoct_config.mask_threshold("tilted") == 55.0
    assert psoct_config.acquisition.grid_size_x("tilted") == 6
    assert psoct_config.zarr_config.codec is Codec.LZ4


def test_saved_file_lists_every_field(psoct_config: PSOCTScanConfig, tmp_path: Path) -> None:
    data = yaml.safe_load(save_config(psoct_config, tmp_path / "s.yaml").read_text())
    assert data["modality"] == "psoct"
    assert data["acquisition"]["tile_size_x_normal"] == 350
    assert data["processing"]["enface_depth"] == 70
    assert data["zarr_config"]["chunk"] == 128


def test_error_names_field_value_and_allowed(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "modality: psoct\nproject_name: p\nproject_base_path: /p\n"
        "acquisition: {grid_size_x_normal: 0, grid_size_x_tilted: 1, grid_size_y: 2}\n"
        "processing: {surface_spec: 'gradient '}\nbogus_key: 3\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message
    assert "acquisition.grid_size_x_normal" in message and "greater than or equal to 1" in message
    assert "(found 0)" in message
    assert "processing.surface_spec" in message and "'gradient '" in message
    assert "bogus_key" in message and "unknown field" in message


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ([1, 2], "expected a mapping"),
        ({"project_name": "p"}, "'modality': required"),
        ({"modality": "lsm", "project_name": "p"}, "'project_base_path': required but missing"),
        ({"modality": "lsm", "project_name": "p", "project_base_path": "/p",
          "output_mip_preview_window": [5, 1]}, "min < max"),
        ({"modality": "lsm", "project_name": "p", "project_base_path": "/p",
          "zarr_config": {"chunk": 100, "shard": 150}}, "multiple of chunk"),
        ({"modality": "lsm", "project_name": "bad name", "project_base_path": "/p"}, "project_name"),
    ],
)
def test_invalid_mappings(data: object, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        parse_config(data)


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("modality: [psoct\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)


def test_invalid_file_is_never_overwritten(psoct_config: PSOCTScanConfig, tmp_path: Path) -> None:
    path = tmp_path / "scan.yaml"
    path.write_text("modality: psoct\nproject_name: [\n")
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="refusing to overwrite"):
        save_config(psoct_config, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["scan.yaml"]
    save_config(psoct_config, path, replace_invalid=True)
    assert load_config(path) == psoct_config


def test_assignment_is_validated(psoct_config: PSOCTScanConfig) -> None:
    with pytest.raises(ValueError, match="grid_size_y"):
        psoct_config.acquisition.grid_size_y = -2
    with pytest.raises(ValueError, match="twice"):
        PSOCTScanConfig(
            project_name="p", project_base_path="/p",
            acquisition={"grid_size_x_normal": 1, "grid_size_x_tilted": 1, "grid_size_y": 1},
            volume_modalities=["dBI", "dBI"],
        )


def test_configuration_reference_is_current() -> None:
    from opticstream_napari.config.reference import render

    committed = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
    assert committed.read_text() == render(), "regenerate: python -m opticstream_napari.config.reference"
