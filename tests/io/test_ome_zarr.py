"""The incremental OME-Zarr writer: pyramid equality, metadata, readers, completion, errors."""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import zarr

from opticstream_napari.config.zarr import Codec, ZarrConfig
from opticstream_napari.io import ome_zarr
from opticstream_napari.io.downsample import Reduction, pool2
from opticstream_napari.io.ome_zarr import (
    UNITS_PER_WORKER,
    affordable_workers,
    create_pyramid,
    fill_pyramid,
    is_complete,
    open_pyramid,
    write_pyramid,
)
from opticstream_napari.io.ome_zarr_layout import plan_levels
from opticstream_napari.io.output import OutputError

VOXEL = (2.5, 10.0, 10.0)


def _volume(shape: tuple[int, ...] = (11, 90, 110), seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    data = rng.normal(100.0, 10.0, shape).astype(np.float32)
    data[..., :13, :17] = np.nan
    return data


def _irregular_boxes(shape: tuple[int, ...], seed: int) -> list[tuple[slice, ...]]:
    rng = np.random.default_rng(seed)
    cuts = [sorted({0, n, *rng.integers(1, n, 3).tolist()}) for n in shape]
    boxes = [
        tuple(slice(c[i], c[i + 1]) for c, i in zip(cuts, index, strict=True))
        for index in itertools.product(*(range(len(c) - 1) for c in cuts))
    ]
    random.Random(seed).shuffle(boxes)
    return boxes


def _nanmean_reference(data: np.ndarray) -> np.ndarray:
    out = np.empty(tuple((n + 1) // 2 for n in data.shape), dtype=data.dtype)
    for index in np.ndindex(*out.shape):
        block = data[tuple(slice(2 * i, 2 * i + 2) for i in index)]
        finite = block[np.isfinite(block)]
        out[index] = finite.mean() if finite.size else np.nan
    return out


@pytest.mark.parametrize("shard", [None, 64], ids=["unsharded", "sharded"])
def test_incremental_regions_in_random_order_equal_a_single_pass(
    tmp_path: Path, shard: int | None
) -> None:
    data = _volume()
    config = ZarrConfig(chunk=16, shard=shard)
    whole = open_pyramid(write_pyramid(tmp_path / "whole.ome.zarr", data, VOXEL, zarr_config=config))
    live = create_pyramid(tmp_path / "live.ome.zarr", data.shape, np.float32, VOXEL, zarr_config=config)
    fill_pyramid(live, lambda r: data[r], _irregular_boxes(data.shape, seed=3), workers=3)
    assert len(live.levels) == len(whole.levels) >= 4
    for level in range(len(whole.levels)):
        np.testing.assert_array_equal(live.read(level), whole.read(level))
    np.testing.assert_allclose(whole.read(1), _nanmean_reference(data), rtol=1e-6)


def test_affordable_workers_follow_cores_and_memory() -> None:
    gib = 2**30
    assert affordable_workers(2 * gib, available=20 * gib, cores=2) == 1  # a 1024² × 500 float32 shard here
    assert affordable_workers(gib // 2, available=20 * gib, cores=2) == 2
    assert affordable_workers(gib // 2, available=20 * gib, cores=16) == 20 * gib // 2 // (UNITS_PER_WORKER * gib // 2)
    assert affordable_workers(gib // 2, available=200 * gib, cores=16) == 16
    assert affordable_workers(gib, available=0, cores=8) == 1  # never none


class _ThreadRecorder:
    """An array whose reads note the thread that made them."""

    def __init__(self, data: np.ndarray) -> None:
        self.data, self.shape, self.dtype = data, data.shape, data.dtype
        self.threads: set[str] = set()

    def __getitem__(self, region: tuple[slice, ...]) -> np.ndarray:
        self.threads.add(threading.current_thread().name)
        return self.data[region]


@pytest.mark.parametrize(("available", "cores", "parallel"), [(2**40, None, True), (0, None, False), (2**40, 1, False)])
def test_write_pyramid_picks_its_workers_from_cores_and_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, available: int, cores: int | None, parallel: bool
) -> None:
    """``workers=None`` writes units on a pool when memory and cores allow (the process's cores,
    or the share given as ``cores``) and on the calling thread otherwise; the bytes are the same."""
    monkeypatch.setattr(ome_zarr, "available_memory", lambda: available)
    monkeypatch.setattr(ome_zarr, "usable_cores", lambda: 4)
    data = _volume((8, 64, 64))
    config = ZarrConfig(chunk=16, shard=32)
    source = _ThreadRecorder(data)
    auto = open_pyramid(write_pyramid(tmp_path / "auto.ome.zarr", source, VOXEL, zarr_config=config, workers=None,
                                      cores=cores))
    one = open_pyramid(write_pyramid(tmp_path / "one.ome.zarr", data, VOXEL, zarr_config=config, workers=1))
    on_pool = {name.startswith("ome-zarr") for name in source.threads}
    assert on_pool == {parallel}
    for level in range(len(one.levels)):
        np.testing.assert_array_equal(auto.read(level), one.read(level))


def test_each_level_pools_the_one_below_and_keeps_odd_edges() -> None:
    data = _volume((5, 7, 9))
    np.testing.assert_allclose(pool2(data), _nanmean_reference(data), rtol=1e-6)
    ints = np.arange(35, dtype=np.uint16).reshape(5, 7)
    assert pool2(ints)[0, 0] == 4 and pool2(ints).shape == (3, 4)
    angles = np.array([[89.0, -89.0], [89.0, -89.0]], dtype=np.float32)
    assert abs(abs(pool2(angles, Reduction.CIRCULAR_180)[0, 0]) - 90.0) < 1e-3


def test_levels_until_one_chunk_and_configured_count() -> None:
    levels = plan_levels((40, 1000, 700), VOXEL, ZarrConfig(chunk=128, shard=512))
    assert [lv.shape for lv in levels] == [(40, 1000, 700), (20, 500, 350), (10, 250, 175), (5, 125, 88)]
    assert levels[0].chunk == (40, 128, 128) and levels[0].shard == (40, 512, 512)
    assert levels[1].shard == (20, 256, 256)
    assert levels[-1].shard is None
    assert levels[2].scale == (10.0, 40.0, 40.0) and levels[2].translation == (3.75, 15.0, 15.0)
    assert len(plan_levels((40, 1000, 700), VOXEL, ZarrConfig(chunk=128, levels=2))) == 2


@pytest.mark.parametrize("codec", list(Codec))
def test_metadata_axes_units_scale_and_codec(tmp_path: Path, codec: Codec) -> None:
    data = _volume((3, 40, 50))
    config = ZarrConfig(chunk=16, shard=32, codec=codec, clevel=3)
    path = write_pyramid(tmp_path / "m.ome.zarr", data, VOXEL, zarr_config=config, window=(80, 120))
    group = json.loads((path / "zarr.json").read_text())
    assert group["zarr_format"] == 3
    ome = group["attributes"]["ome"]
    assert ome["version"] == "0.5"
    multiscale = ome["multiscales"][0]
    assert [a["name"] for a in multiscale["axes"]] == ["z", "y", "x"]
    assert {a["unit"] for a in multiscale["axes"]} == {"micrometer"}
    scales = [d["coordinateTransformations"][0]["scale"] for d in multiscale["datasets"]]
    assert scales[:3] == [[2.5, 10.0, 10.0], [5.0, 20.0, 20.0], [10.0, 40.0, 40.0]]
    assert ome["omero"]["channels"][0]["window"]["start"] == 80.0
    array = json.loads((path / "0" / "zarr.json").read_text())
    assert array["dimension_names"] == ["z", "y", "x"]
    inner = array["codecs"][0]["configuration"]["codecs"]
    assert array["codecs"][0]["configuration"]["chunk_shape"] == [3, 16, 16]
    names = [c["name"] for c in inner]
    assert names == (["bytes"] if codec is Codec.NONE else ["bytes", "blosc"])
    if codec is not Codec.NONE:
        assert inner[1]["configuration"]["cname"] == codec.value
    np.testing.assert_array_equal(zarr.open_array(path / "0")[:], data)


def test_napari_ome_zarr_reads_a_multiscale_with_scale(tmp_path: Path) -> None:
    napari_reader = pytest.importorskip("napari_ome_zarr").napari_get_reader
    data = _volume((4, 90, 100))
    path = write_pyramid(
        tmp_path / "r.ome.zarr", data, VOXEL, zarr_config=ZarrConfig(chunk=32), window=(70, 130)
    )
    reader = napari_reader(str(path))
    assert reader is not None
    [(levels, meta, kind)] = reader(str(path))
    assert kind == "image"
    assert [lv.shape for lv in levels] == [(4, 90, 100), (2, 45, 50), (1, 23, 25)]
    assert meta["scale"] == [2.5, 10.0, 10.0]
    assert meta["units"] == ("micrometer",) * 3
    assert meta["axis_labels"] == ("z", "y", "x")
    assert meta["contrast_limits"] == [70.0, 130.0]
    np.testing.assert_array_equal(np.asarray(levels[0]), data)


@pytest.mark.parametrize("shard", [None, 32], ids=["unsharded", "sharded"])
def test_ome_zarr_models_validates(tmp_path: Path, shard: int | None) -> None:
    image_model = pytest.importorskip("ome_zarr_models.v05").Image
    path = write_pyramid(
        tmp_path / "v.ome.zarr", _volume((60, 70)), VOXEL[1:],
        zarr_config=ZarrConfig(chunk=16, shard=shard),
    )
    image = image_model.from_zarr(zarr.open_group(path, mode="r"))
    assert [d.path for d in image.ome_attributes.multiscales[0].datasets] == ["0", "1", "2", "3"]


def test_unwritten_voxels_read_as_fill(tmp_path: Path) -> None:
    floats = create_pyramid(tmp_path / "f.ome.zarr", (32, 32), np.float32, (1.0, 1.0),
                            zarr_config=ZarrConfig(chunk=16, shard=None))
    written = floats.write_region((slice(0, 16), slice(0, 16)), np.ones((16, 16), np.float32))
    assert np.isnan(floats.read(0)[16:, :]).all() and (floats.read(0)[:16, :16] == 1).all()
    assert [(w.level, w.start, w.stop) for w in written] == [
        (0, (0, 0), (16, 16)), (1, (0, 0), (8, 8))
    ]
    assert written[1].slices == (slice(0, 8), slice(0, 8))
    ints = create_pyramid(tmp_path / "i.ome.zarr", (20, 20), np.uint8, (1.0, 1.0))
    assert (ints.read(0) == 0).all()


def test_completion_marker_and_crash_leave_no_complete_store(tmp_path: Path) -> None:
    path = tmp_path / "c.ome.zarr"
    pyramid = create_pyramid(path, (40, 40), np.float32, (1.0, 1.0), zarr_config=ZarrConfig(chunk=16))
    pyramid.write_region((slice(0, 40), slice(0, 40)), np.zeros((40, 40), np.float32))
    assert not is_complete(path)
    pyramid.mark_complete()
    assert is_complete(path)
    assert open_pyramid(path).read(0).shape == (40, 40)
    shutil.rmtree(path / "2")
    assert not is_complete(path)
    assert not is_complete(tmp_path / "missing.ome.zarr")

    def failing(region: tuple[slice, ...]) -> np.ndarray:
        raise RuntimeError("tile reader crashed")

    target = tmp_path / "crash.ome.zarr"
    with pytest.raises(RuntimeError, match="crashed"):
        write_pyramid(target, _FailingArray((64, 64), failing), (1.0, 1.0),
                      zarr_config=ZarrConfig(chunk=16))
    assert not target.exists() and os.listdir(tmp_path) == ["c.ome.zarr"]


class _FailingArray:
    dtype = np.dtype(np.float32)

    def __init__(self, shape: tuple[int, ...], fail: object) -> None:
        self.shape = shape
        self._fail = fail

    def __getitem__(self, region: tuple[slice, ...]) -> np.ndarray:
        return self._fail(region)  # type: ignore[operator]


def test_reopen_and_continue_writing(tmp_path: Path) -> None:
    data = _volume((2, 64, 64))
    path = tmp_path / "o.ome.zarr"
    first = create_pyramid(path, data.shape, np.float32, VOXEL,
                           zarr_config=ZarrConfig(chunk=16), reduction=Reduction.CIRCULAR_180)
    first.write_region((slice(None), slice(0, 30), slice(None)), data[:, :30])
    again = open_pyramid(path)
    assert again.reduction is Reduction.CIRCULAR_180 and again.levels == first.levels
    again.write_region((slice(None), slice(30, 64), slice(None)), data[:, 30:])
    np.testing.assert_array_equal(again.read(0), data)


def test_bad_regions_and_data_are_refused(tmp_path: Path) -> None:
    pyramid = create_pyramid(tmp_path / "b.ome.zarr", (20, 20), np.uint16, (1.0, 1.0))
    with pytest.raises(ValueError, match="does not fit"):
        pyramid.write_region((slice(0, 10), slice(0, 10)), np.zeros((5, 5), np.uint16))
    with pytest.raises(ValueError, match="outside"):
        pyramid.write_region((slice(10, 30), slice(0, 10)), np.zeros((20, 10), np.uint16))
    with pytest.raises(TypeError, match="float32"):
        pyramid.write_region((slice(0, 2), slice(0, 2)), np.zeros((2, 2), np.float32))
    with pytest.raises(FileExistsError):
        create_pyramid(tmp_path / "b.ome.zarr", (20, 20), np.uint16, (1.0, 1.0))


def test_unwritable_output_folder_names_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    target = blocker / "m.ome.zarr"
    with pytest.raises(OutputError, match=re.escape(str(blocker))):
        create_pyramid(target, (10, 10), np.float32, (1.0, 1.0))
    with pytest.raises(OutputError, match=re.escape(str(blocker))):
        write_pyramid(target, np.zeros((10, 10), np.float32), (1.0, 1.0))


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions")
def test_read_only_folder_names_the_path(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    with pytest.raises(OutputError, match=re.escape(str(locked))):
        create_pyramid(locked / "m.ome.zarr", (10, 10), np.float32, (1.0, 1.0))
