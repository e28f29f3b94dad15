"""LSM simulator: spec-13 spool sets, names, ground truth, live writing and stopping."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from opticstream_napari.config.lsm import LSMScanConfig
from opticstream_napari.io.zyla import CameraInfo, ZylaMetadata, ZylaStrip, read_camera_info
from opticstream_napari.naming import (
    GROUND_TRUTH_FOLDER,
    parse_lsm_strip_folder,
    parse_spool_file_name,
    spool_file_name,
)
from opticstream_napari.simulate.live import Pace
from opticstream_napari.simulate.lsm import (
    LSMGroundTruth,
    iter_simulate_lsm,
    load_lsm_ground_truth,
    lsm_camera,
    lsm_camera_for,
    lsm_preset,
    simulate_lsm,
)

STRIP_FOLDERS = {"Run1", "Run1_1", "Run1_C2", "Run1_C2_1"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LSMGroundTruth]:
    base = tmp_path_factory.mktemp("lsm")
    config = lsm_preset(base)
    return base, simulate_lsm(config, base / "raw", seed=3)


def test_tiny_preset_is_the_spec_recipe(tmp_path: Path) -> None:
    config = lsm_preset(tmp_path)
    camera = lsm_camera("tiny")
    assert camera.metadata == ZylaMetadata(64, 128, 256, "Mono16", 2, 66 * 128 * 2)
    assert camera.files_per_strip == 101 and camera.frames_per_strip == 202
    assert config.strips_per_slice == 2
    assert config.info_file == tmp_path / "info.mat"
    assert camera.strip_bytes >= config.strip_folder_size_threshold * 2**30
    assert config.compressed_min_zarr_gb < 1e-3 and config.compressed_min_mip_mb < 0.05


def test_unknown_preset_size(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'huge'"):
        lsm_preset(tmp_path, "huge")  # type: ignore[arg-type]


def test_folders_parse_back_to_identities(tiny: tuple[Path, LSMGroundTruth]) -> None:
    base, truth = tiny
    raw = base / "raw"
    assert {p.name for p in raw.iterdir() if p.name != GROUND_TRUTH_FOLDER} == STRIP_FOLDERS
    assert {t.folder.name for t in truth.strips} == STRIP_FOLDERS
    project = lsm_preset(base).project_name
    for strip in truth.strips:
        assert parse_lsm_strip_folder(strip.folder.name).identity(project) == strip.identity
    last = truth.by_folder("Run1_C2_1").identity
    assert (last.slice, last.channel, last.strip) == (1, 2, 2)


def test_strip_folders_pass_the_file_count_and_size_rules(
    tiny: tuple[Path, LSMGroundTruth],
) -> None:
    base, truth = tiny
    config = lsm_preset(base)
    for strip in truth.strips:
        files = list(strip.folder.iterdir())
        assert len(files) > 100
        assert sum(f.stat().st_size for f in files) >= config.strip_folder_size_threshold * 2**30


def test_spool_names_are_reversed_indices(tiny: tuple[Path, LSMGroundTruth]) -> None:
    _, truth = tiny
    names = sorted(p.name for p in truth.strips[0].folder.glob("*spool.dat"))
    assert "1000000000spool.dat" in names and "0010000000spool.dat" in names
    assert sorted(parse_spool_file_name(n) for n in names) == list(range(101))
    assert names == sorted(spool_file_name(i) for i in range(101))


def test_reader_matches_ground_truth(tiny: tuple[Path, LSMGroundTruth]) -> None:
    base, truth = tiny
    info = lsm_preset(base).info_file
    assert read_camera_info(info) == CameraInfo(202, 0)
    for strip in truth.strips:
        reader = ZylaStrip(strip.folder, info_file=info)
        assert reader.shape == (66, 128, 202)
        volume = reader.read_frames()
        mip = volume.max(axis=0)
        assert mip.dtype == np.uint16 and mip.shape == (128, 202)
        np.testing.assert_array_equal(mip, strip.load_mip())
        np.testing.assert_array_equal(volume[:64], strip.load_block())
        assert not volume[64:].any()


def test_strips_tile_the_volume_along_x(tiny: tuple[Path, LSMGroundTruth]) -> None:
    _, truth = tiny
    assert set(truth.volumes) == {(1, 1), (1, 2)}
    for key, path in truth.volumes.items():
        volume = np.load(path)
        assert volume.shape == (64, 128, 404)
        strips = [t for t in truth.strips if (t.identity.slice, t.identity.channel) == key]
        strips.sort(key=lambda t: t.identity.strip)
        assert [t.x_range for t in strips] == [(0, 202), (202, 404)]
        np.testing.assert_array_equal(np.concatenate([t.load_block() for t in strips], 2), volume)


def test_column_halves_and_channels_differ(tiny: tuple[Path, LSMGroundTruth]) -> None:
    _, truth = tiny
    mip = truth.by_folder("Run1").load_mip()
    beads, cells = mip[:64], mip[64:]
    assert beads.max() > 1000 and np.median(cells) > np.median(beads) + 50
    assert not np.array_equal(mip, truth.by_folder("Run1_C2").load_mip())


def test_manifest_reads_back(tiny: tuple[Path, LSMGroundTruth]) -> None:
    base, truth = tiny
    assert truth.manifest.is_file()
    assert load_lsm_ground_truth(base / "raw") == truth


def test_same_seed_same_data_whatever_the_channel_count(
    tiny: tuple[Path, LSMGroundTruth], tmp_path: Path
) -> None:
    base, truth = tiny
    again = simulate_lsm(lsm_preset(tmp_path), tmp_path / "raw", seed=3, channels=1)
    assert {t.folder.name for t in again.strips} == {"Run1", "Run1_1"}
    np.testing.assert_array_equal(
        again.by_folder("Run1_1").load_mip(), truth.by_folder("Run1_1").load_mip()
    )
    name = spool_file_name(7)
    assert (tmp_path / "raw/Run1" / name).read_bytes() == (base / "raw/Run1" / name).read_bytes()


def test_live_mode_yields_folders_one_by_one(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    strips = iter_simulate_lsm(lsm_preset(tmp_path), raw, channels=1, pace=Pace(0.001))
    first = next(strips)
    assert first == raw / "Run1"
    assert len(ZylaStrip(first).files) == 101
    assert not (raw / "Run1_1").exists()
    assert next(strips) == raw / "Run1_1"
    with pytest.raises(StopIteration) as done:
        next(strips)
    assert len(done.value.value.strips) == 2


def test_live_spool_file_grows_before_it_is_complete(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    stop = threading.Event()
    result: list[LSMGroundTruth] = []
    pace = Pace(seconds_per_file=0.4, pieces=4)
    worker = threading.Thread(
        target=lambda: result.append(simulate_lsm(lsm_preset(tmp_path), raw, pace=pace, stop=stop))
    )
    worker.start()
    first = raw / "Run1" / spool_file_name(0)
    full = lsm_camera("tiny").metadata.file_bytes
    sizes: set[int] = set()
    deadline = time.monotonic() + 5
    try:
        while time.monotonic() < deadline and not any(0 < s < full for s in sizes):
            if first.exists():
                sizes.add(first.stat().st_size)
            time.sleep(0.005)
    finally:
        stop.set()
        worker.join(5)
    assert any(0 < s < full for s in sizes)
    assert result and result[0].strips == ()


def test_stop_ends_the_run_after_the_current_strip(tmp_path: Path) -> None:
    stop = threading.Event()
    strips = iter_simulate_lsm(lsm_preset(tmp_path), tmp_path / "raw", stop=stop)
    assert next(strips).name == "Run1"
    stop.set()
    with pytest.raises(StopIteration) as done:
        next(strips)
    assert [t.folder.name for t in done.value.value.strips] == ["Run1"]
    assert [t.folder.name for t in load_lsm_ground_truth(tmp_path / "raw").strips] == ["Run1"]


@pytest.mark.parametrize("size", ["tiny", "demo", "large"])
def test_a_preset_config_finds_its_camera(tmp_path: Path, size: str) -> None:
    assert lsm_camera_for(lsm_preset(tmp_path, size)) == lsm_camera(size)
    assert size != "large" or lsm_camera(size).strip_bytes >= 2**30


def test_config_must_accept_the_simulated_strips(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="strip_folder_size_threshold"):
        simulate_lsm(lsm_preset(tmp_path, "large"), tmp_path / "raw", size="tiny")
    default = LSMScanConfig(project_name="p", project_base_path=tmp_path)
    with pytest.raises(ValueError, match="no simulated camera"):
        simulate_lsm(default, tmp_path / "raw")
    no_info = lsm_preset(tmp_path).model_copy(update={"info_file": None})
    with pytest.raises(ValueError, match="info_file"):
        simulate_lsm(no_info, tmp_path / "raw")
    with pytest.raises(ValueError, match="channels"):
        simulate_lsm(lsm_preset(tmp_path), tmp_path / "raw", channels=3)
