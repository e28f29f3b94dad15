"""The LSM steps: a strip compressed in one read of its spool files; the camera halves of the strip MIPs
concatenated, with previews that always fit a JPEG."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from opticstream_napari import naming
from opticstream_napari.config import LSMScanConfig
from opticstream_napari.config.zarr import ZarrConfig
from opticstream_napari.engine.pipelines import lsm_work
from opticstream_napari.engine.pipelines.lsm_work import (
    PREVIEW_MAX_SIDE,
    StripVolumeError,
    compress_strip,
    stitch_channel_mip,
    stitch_channel_volume,
)
from opticstream_napari.identity import LSMChannelId, LSMStripId
from opticstream_napari.io.mip_tiff import MipShapeError
from opticstream_napari.io.ome_zarr import open_pyramid, write_pyramid
from opticstream_napari.io.zyla import ZylaMetadata, ZylaStrip, write_spool_set
from opticstream_napari.simulate.lsm import lsm_preset

STRIP = LSMStripId("sub-x", 1, 1, 1)


@pytest.fixture
def small_strip(tmp_path: Path) -> tuple[LSMScanConfig, Path]:
    """A 42 × 48 × 24 strip (padding row included) written in 32³ shards: 4 write units."""
    metadata = ZylaMetadata(40, 48, 96, "Mono16", 4)
    frames = np.random.default_rng(5).integers(0, 4000, (24, 40, 48), dtype=np.uint16)
    write_spool_set(tmp_path / "Run1", metadata, frames)
    config = LSMScanConfig(
        project_name="sub-x", project_base_path=tmp_path / "out", strip_folder_size_threshold=0,
        min_strip_files=0, compressed_min_zarr_gb=0, compressed_min_mip_mb=0,
        zarr_config=ZarrConfig(chunk=16, shard=32),
    )
    return config, tmp_path / "Run1"


def test_a_strip_is_read_once_and_its_mip_comes_from_the_same_blocks(
    small_strip: tuple[LSMScanConfig, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    config, folder = small_strip
    voxels_read = []
    read = ZylaStrip.__getitem__

    def counting(self: ZylaStrip, key: tuple[slice, ...]) -> np.ndarray:
        block = read(self, key)
        voxels_read.append(block.size)
        return block

    monkeypatch.setattr(ZylaStrip, "__getitem__", counting)
    result = compress_strip(config.model_dump(mode="json"), STRIP.to_dict(), str(folder))
    monkeypatch.undo()
    volume = ZylaStrip(folder).read_frames()
    assert len(voxels_read) == 4 and sum(voxels_read) == volume.size
    np.testing.assert_array_equal(open_pyramid(result["outputs"]["zarr"]).read(0), volume)
    mip = tifffile.imread(result["outputs"]["mip"])
    assert mip.dtype == np.uint16
    np.testing.assert_array_equal(mip, volume.max(axis=0))


@pytest.mark.parametrize(("threads", "num_workers", "cores"), [(None, 1, 1), (1, 8, 1), (3, 2, 2)])
def test_strip_compression_uses_the_task_share_and_at_most_num_workers(
    small_strip: tuple[LSMScanConfig, Path], monkeypatch: pytest.MonkeyPatch,
    threads: int | None, num_workers: int, cores: int,
) -> None:
    config, folder = small_strip
    seen = {}
    write = lsm_work.write_pyramid

    def recording(*args: object, **kwargs: object) -> Path:
        seen.update(workers=kwargs["workers"], cores=kwargs["cores"])
        return write(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(lsm_work, "write_pyramid", recording)
    config = config.model_copy(update={"num_workers": num_workers})
    compress_strip(config.model_dump(mode="json"), STRIP.to_dict(), str(folder), threads)
    assert seen == {"workers": None, "cores": cores}


def test_a_channel_mosaic_taller_than_a_jpeg_still_gets_its_previews(tmp_path: Path) -> None:
    config = lsm_preset(tmp_path / "project", "tiny").model_copy(update={"strips_per_slice": 3})
    root = config.output_root
    mips = []
    for strip in (1, 2, 3):
        mip = np.full((44_000, 4), 100 * strip, np.uint16)  # halves of 22,000 rows: 66,000 rows in all
        path = root / naming.lsm_strip_mip_name(LSMStripId(config.project_name, 1, 1, strip))
        path.parent.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(path, mip)
        mips.append(mip)
    channel = LSMChannelId(config.project_name, 1, 1)

    result = stitch_channel_mip(config.model_dump(mode="json"), channel.to_dict())

    for index, half in enumerate(("ch1", "ch2")):
        mosaic = tifffile.imread(result["outputs"][half])
        np.testing.assert_array_equal(mosaic, np.concatenate([np.array_split(m, 2)[index] for m in mips]))
        with Image.open(root / naming.lsm_channel_mip_name(channel, half, "jpg")) as image:
            assert image.format == "JPEG" and image.size[1] == PREVIEW_MAX_SIDE
            rows = np.asarray(image)[:, 0]
        assert rows[100] < rows[PREVIEW_MAX_SIDE // 2] < rows[-100], "strips 1, 2, 3 from top to bottom"


def test_a_strip_of_another_size_fails_the_channel_naming_it_and_writes_nothing(tmp_path: Path) -> None:
    config = lsm_preset(tmp_path / "project", "tiny").model_copy(update={"strips_per_slice": 3})
    root = config.output_root
    paths = [root / naming.lsm_strip_mip_name(LSMStripId(config.project_name, 1, 1, strip)) for strip in (1, 2, 3)]
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    for path, frames in zip(paths, (30, 29, 30), strict=True):
        tifffile.imwrite(path, np.ones((40, frames), np.uint16))
    before = sorted(root.iterdir())

    expected = f"{paths[1]}: its MIP is (40, 29), {paths[0].name}'s is (40, 30)"
    with pytest.raises(MipShapeError, match=re.escape(expected)):
        stitch_channel_mip(config.model_dump(mode="json"), LSMChannelId(config.project_name, 1, 1).to_dict())

    assert sorted(root.iterdir()) == before, "no mosaic, preview or temporary"


def test_odd_camera_columns_give_the_first_half_the_middle_row(tmp_path: Path) -> None:
    config = lsm_preset(tmp_path / "project", "tiny").model_copy(update={"strips_per_slice": 2})
    root = config.output_root
    mips = [np.arange(5 * 3, dtype=np.uint16).reshape(5, 3) + 100 * strip for strip in (1, 2)]
    for strip, mip in zip((1, 2), mips, strict=True):
        path = root / naming.lsm_strip_mip_name(LSMStripId(config.project_name, 1, 1, strip))
        path.parent.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(path, mip)

    result = stitch_channel_mip(config.model_dump(mode="json"), LSMChannelId(config.project_name, 1, 1).to_dict())

    np.testing.assert_array_equal(tifffile.imread(result["outputs"]["ch1"]), np.concatenate([m[:3] for m in mips]))
    np.testing.assert_array_equal(tifffile.imread(result["outputs"]["ch2"]), np.concatenate([m[3:] for m in mips]))


def _strip_volumes(config: LSMScanConfig, shapes: list[tuple[int, int, int]]) -> list[np.ndarray]:
    """Strip OME-Zarrs of ``shapes`` for channel 1 of slice 1, as the strip step leaves them."""
    volumes = []
    for number, shape in enumerate(shapes, start=1):
        volume = np.random.default_rng(number).integers(0, 4000, shape, dtype=np.uint16)
        strip = LSMStripId(config.project_name, 1, 1, number)
        write_pyramid(config.output_root / naming.lsm_strip_zarr_name(strip), volume, (1.0, 1.0, 1.0),
                      zarr_config=config.zarr_config)
        volumes.append(volume)
    return volumes


@pytest.fixture
def volume_config(tmp_path: Path) -> LSMScanConfig:
    """Three strips a channel, written in 16³ chunks of 32³ shards: strip halves of 21 columns
    do not line up with the shards, so write units straddle strips."""
    return lsm_preset(tmp_path, "tiny").model_copy(
        update={"strips_per_slice": 3, "zarr_config": ZarrConfig(chunk=16, shard=32)}
    )


def test_a_channel_volume_puts_the_strips_camera_halves_side_by_side(volume_config: LSMScanConfig) -> None:
    volumes = _strip_volumes(volume_config, [(20, 41, 30)] * 3)
    channel = LSMChannelId(volume_config.project_name, 1, 1)
    result = stitch_channel_volume(volume_config.model_dump(mode="json"), channel.to_dict())
    for half, columns in (("ch1", slice(0, 21)), ("ch2", slice(21, 41))):
        volume = open_pyramid(result["outputs"][half]).read(0)
        np.testing.assert_array_equal(volume, np.concatenate([v[:, columns] for v in volumes], axis=1))
    assert result["strip_count"] == 3


def test_a_channel_volume_refuses_an_unfinished_strip_and_writes_nothing(volume_config: LSMScanConfig) -> None:
    _strip_volumes(volume_config, [(20, 40, 30)] * 3)
    unfinished = volume_config.output_root / naming.lsm_strip_zarr_name(LSMStripId(volume_config.project_name, 1, 1, 2))
    (unfinished / "zarr.json").unlink()
    channel = LSMChannelId(volume_config.project_name, 1, 1)
    expected = f"1 of 3 strip OME-Zarrs are missing or unfinished: {unfinished}"
    with pytest.raises(StripVolumeError, match=re.escape(expected)):
        stitch_channel_volume(volume_config.model_dump(mode="json"), channel.to_dict())
    assert not list(volume_config.output_root.glob("*volume*"))


def test_a_channel_volume_refuses_a_strip_of_another_shape_naming_it(volume_config: LSMScanConfig) -> None:
    _strip_volumes(volume_config, [(20, 40, 30), (20, 40, 30), (20, 40, 29)])
    odd = volume_config.output_root / naming.lsm_strip_zarr_name(LSMStripId(volume_config.project_name, 1, 1, 3))
    channel = LSMChannelId(volume_config.project_name, 1, 1)
    with pytest.raises(StripVolumeError, match=re.escape(f"{odd}: its volume is (20, 40, 29) uint16")):
        stitch_channel_volume(volume_config.model_dump(mode="json"), channel.to_dict())
    assert not list(volume_config.output_root.glob("*volume*"))


def test_a_channel_volume_below_its_size_threshold_fails_when_validated(volume_config: LSMScanConfig) -> None:
    _strip_volumes(volume_config, [(20, 40, 30)] * 3)
    config = volume_config.model_copy(update={"skip_channel_volume_zarr_validation": False,
                                              "channel_volume_zarr_size_threshold": 1.0})
    channel = LSMChannelId(config.project_name, 1, 1)
    with pytest.raises(lsm_work.StripCheckError, match="below channel_volume_zarr_size_threshold = 1 GB"):
        stitch_channel_volume(config.model_dump(mode="json"), channel.to_dict())
