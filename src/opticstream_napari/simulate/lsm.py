"""Light-sheet acquisition simulator: Zyla spool sets cut from a known volume, plus the truth.

How strips tile the sample: every (slice, channel) has one ground-truth volume of shape
``(AOIHeight, AOIWidth, strips_per_slice * frames_per_strip)`` on the axes ``z, y, x``
(camera rows, camera columns, stage sweep). Strip ``k`` (1-based) is the contiguous,
non-overlapping block ``x in [(k-1)*F, k*F)`` with ``F`` frames per strip, so concatenating the
strips of a slice along x gives the volume back exactly.

The two column halves of the camera see different objects, so the ch1/ch2 split of the MIPs is
testable: columns ``[0, W//2)`` hold small bright beads, ``[W//2, W)`` larger, dimmer cells on a
brighter background, all with shot noise. Padding rows and stride columns are zero on disk.
Every spool file's content depends only on (seed, slice, channel, strip, file index), so the
data do not depend on the pace, the channel count or where a run was stopped.

Ground truth goes to ``<raw_folder>/ground_truth``: the volumes (``.npy``, uint16), one MIP per
strip (``.npy``, ``max`` over camera rows of the strip as stored, padding included, so
``(AOIStride/bpp, frames)``), and ``lsm_manifest.json`` mapping every strip folder to its identity
and its x range in its volume. The manifest is rewritten after each strip, so a run stopped early
still describes what exists.
"""

from __future__ import annotations

import json
import math
from collections.abc import Generator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from opticstream_napari.config.lsm import LSMScanConfig
from opticstream_napari.identity import LSMStripId
from opticstream_napari.io.atomic import atomic_path, atomic_write_text
from opticstream_napari.io.zyla import (
    ZylaMetadata,
    encode_spool_file,
    write_camera_info,
    write_zyla_metadata,
)
from opticstream_napari.naming import (
    GROUND_TRUTH_FOLDER,
    LSM_INFO_FILE,
    format_lsm_strip_folder,
    spool_file_name,
)
from opticstream_napari.simulate.live import INSTANT, Pace, StopSignal, write_progressively

LSMSize = Literal["tiny", "demo", "large"]
MANIFEST_NAME = "lsm_manifest.json"


# --------------------------------------------------------------------------- presets


@dataclass(frozen=True, slots=True)
class LSMCamera:
    """The camera geometry of a simulated strip: the ini values and the number of spool files."""

    metadata: ZylaMetadata
    files_per_strip: int

    @property
    def frames_per_strip(self) -> int:
        return self.files_per_strip * self.metadata.images_per_file

    @property
    def strip_bytes(self) -> int:
        return self.files_per_strip * self.metadata.file_bytes


@dataclass(frozen=True, slots=True)
class _Preset:
    camera: LSMCamera
    strips_per_slice: int
    strip_folder_gb: float
    zarr_gb: float
    mip_mb: float


_PRESETS: dict[str, _Preset] = {
    # Section 13 of the spec: 101 files of 2 frames of (64+2) x 128 Mono16 = 3.4 MB per strip.
    "tiny": _Preset(LSMCamera(ZylaMetadata(64, 128, 256, "Mono16", 2), 101), 2, 1e-3, 1e-4, 0.01),
    # Odd AOIHeight (one padding row), 64 MiB per strip: big enough to look at in napari.
    "demo": _Preset(LSMCamera(ZylaMetadata(127, 512, 1024, "Mono16", 4), 128), 4, 0.03, 1e-3, 0.1),
    # 1 GiB per strip, the size the compression benchmarks use.
    "large": _Preset(LSMCamera(ZylaMetadata(510, 1024, 2048, "Mono16", 8), 128), 2, 0.5, 0.01, 1.0),
}


def lsm_camera(size: LSMSize = "tiny") -> LSMCamera:
    return _preset(size).camera


def lsm_preset(base: Path, size: LSMSize = "tiny") -> LSMScanConfig:
    """A config whose strip and output thresholds the simulated strips of ``size`` pass."""
    preset = _preset(size)
    base = Path(base)
    return LSMScanConfig(
        project_name=f"sub-lsmsim_voi-{size}",
        project_base_path=base,
        info_file=base / LSM_INFO_FILE,
        strip_folder_size_threshold=preset.strip_folder_gb,
        compressed_min_zarr_gb=preset.zarr_gb,
        compressed_min_mip_mb=preset.mip_mb,
        strips_per_slice=preset.strips_per_slice,
    )


def lsm_camera_for(config: LSMScanConfig) -> LSMCamera:
    """The smallest preset camera whose strips pass the config's own gates.

    A scan config carries no camera geometry, so this is how a config saved by ``lsm_preset``
    (and loaded back from YAML) finds the strips it was made for.
    """
    for preset in _PRESETS.values():
        if _accepts(config, preset.camera):
            return preset.camera
    raise ValueError(
        f"no simulated camera passes strip_folder_size_threshold "
        f"{config.strip_folder_size_threshold} GB and min_strip_files {config.min_strip_files}; "
        f"lower them or use lsm_preset"
    )


def _accepts(config: LSMScanConfig, camera: LSMCamera) -> bool:
    big_enough = camera.strip_bytes >= config.strip_folder_size_threshold * 2**30
    return big_enough and camera.files_per_strip + 2 > config.min_strip_files


def _preset(size: str) -> _Preset:
    try:
        return _PRESETS[size]
    except KeyError:
        sizes = sorted(_PRESETS)
        raise ValueError(f"LSM preset size must be one of {sizes}, found {size!r}") from None


# --------------------------------------------------------------------------- ground truth


@dataclass(frozen=True, slots=True)
class LSMStripTruth:
    """Where one simulated strip came from and what its MIP must be."""

    folder: Path
    identity: LSMStripId
    volume: Path
    x_range: tuple[int, int]
    mip: Path

    def load_block(self) -> np.ndarray:
        """The strip's data ``(AOIHeight, AOIWidth, frames)``, without camera padding."""
        start, stop = self.x_range
        return np.asarray(np.load(self.volume, mmap_mode="r")[:, :, start:stop])

    def load_mip(self) -> np.ndarray:
        return np.load(self.mip)


@dataclass(frozen=True, slots=True)
class LSMGroundTruth:
    """Everything a test needs to check the LSM pipeline against what was acquired."""

    root: Path
    camera: LSMCamera
    strips: tuple[LSMStripTruth, ...]
    volumes: dict[tuple[int, int], Path]

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST_NAME

    def by_folder(self, folder_name: str) -> LSMStripTruth:
        for truth in self.strips:
            if truth.folder.name == folder_name:
                return truth
        raise KeyError(f"no simulated strip folder {folder_name!r} in {self.manifest}")


def load_lsm_ground_truth(raw_folder: Path) -> LSMGroundTruth:
    """Read back the manifest a simulation wrote under ``raw_folder``."""
    root = Path(raw_folder) / GROUND_TRUTH_FOLDER
    data = json.loads((root / MANIFEST_NAME).read_text(encoding="utf-8"))
    camera = LSMCamera(ZylaMetadata(**data["camera"]), data["files_per_strip"])
    strips = tuple(
        LSMStripTruth(
            folder=Path(raw_folder) / entry["folder"],
            identity=LSMStripId.from_dict(entry["identity"]),
            volume=root / entry["volume"],
            x_range=(entry["x_range"][0], entry["x_range"][1]),
            mip=root / entry["mip"],
        )
        for entry in data["strips"]
    )
    volumes = {(v["slice"], v["channel"]): root / v["path"] for v in data["volumes"]}
    return LSMGroundTruth(root, camera, strips, volumes)


def _manifest(truth: LSMGroundTruth, raw_folder: Path) -> dict[str, Any]:
    return {
        "modality": "lsm",
        "tiling": "strip k covers x in [(k-1)*F, k*F) of its (slice, channel) volume (z, y, x)",
        "halves": "columns [0, W//2): beads; [W//2, W): cells",
        "camera": asdict(truth.camera.metadata),
        "files_per_strip": truth.camera.files_per_strip,
        "volumes": [
            {"slice": s, "channel": c, "path": path.name}
            for (s, c), path in sorted(truth.volumes.items())
        ],
        "strips": [
            {
                "folder": str(t.folder.relative_to(raw_folder)),
                "identity": t.identity.to_dict(),
                "volume": t.volume.name,
                "x_range": list(t.x_range),
                "mip": t.mip.name,
            }
            for t in truth.strips
        ],
    }


def _volume_name(slice_id: int, channel: int) -> str:
    return f"lsm_slice{slice_id:02d}_channel{channel:02d}_volume.npy"


def _mip_name(folder_name: str) -> str:
    return f"lsm_{folder_name}_mip.npy"


# --------------------------------------------------------------------------- phantom


@dataclass(frozen=True, slots=True)
class _Kind:
    voxels_per_object: int
    sigma: tuple[float, float]
    amplitude: tuple[float, float]
    background: float


_HALF_KINDS = (
    _Kind(10_000, (0.8, 1.5), (1500.0, 4000.0), 100.0),  # beads
    _Kind(25_000, (2.0, 3.5), (400.0, 900.0), 180.0),  # cells
)


@dataclass(frozen=True, slots=True)
class _Population:
    """Gaussian blobs of one column half, sorted by x so a block finds its blobs by bisection."""

    centers: np.ndarray
    sigmas: np.ndarray
    amplitudes: np.ndarray
    background: float
    width: int


def _population(kind: _Kind, shape: tuple[int, int, int], rng: np.random.Generator) -> _Population:
    count = max(1, round(math.prod(shape) / kind.voxels_per_object))
    centers = rng.uniform(0.0, shape, size=(count, 3))
    order = np.argsort(centers[:, 2])
    return _Population(
        centers=centers[order],
        sigmas=rng.uniform(*kind.sigma, size=count)[order],
        amplitudes=rng.uniform(*kind.amplitude, size=count)[order],
        background=kind.background,
        width=shape[1],
    )


def _profile(center: float, sigma: float, lo: int, hi: int) -> tuple[np.ndarray, slice]:
    """A 1-D Gaussian clipped to ``[lo, hi)``, and where it lands in a block starting at ``lo``."""
    reach = math.ceil(3 * sigma)
    start, stop = max(lo, math.floor(center) - reach), min(hi, math.floor(center) + reach + 1)
    coords = np.arange(start, stop, dtype=np.float32)
    return np.exp(-0.5 * ((coords - center) / sigma) ** 2), slice(start - lo, stop - lo)


def _render(pop: _Population, height: int, x0: int, x1: int) -> np.ndarray:
    """Mean photon counts of frames ``[x0, x1)``, frame-major ``(frames, rows, cols)``."""
    out = np.full((x1 - x0, height, pop.width), pop.background, dtype=np.float32)
    reach = 3.0 * float(pop.sigmas.max()) + 1.0
    lo, hi = np.searchsorted(pop.centers[:, 2], [x0 - reach, x1 + reach])
    for (cz, cy, cx), sigma, amplitude in zip(
        pop.centers[lo:hi], pop.sigmas[lo:hi], pop.amplitudes[lo:hi], strict=True
    ):
        gx, xs = _profile(cx, sigma, x0, x1)
        gz, zs = _profile(cz, sigma, 0, height)
        gy, ys = _profile(cy, sigma, 0, pop.width)
        if gx.size and gz.size and gy.size:
            out[xs, zs, ys] += amplitude * gx[:, None, None] * gz[None, :, None] * gy[None, None, :]
    return out


def _frames(
    halves: tuple[_Population, _Population], metadata: ZylaMetadata, x0: int, x1: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Noisy camera images ``(frames, AOIHeight, AOIWidth)`` of the sample at ``[x0, x1)``.

    Shot noise is drawn as Gaussian with variance equal to the mean: with >= 100 counts per
    voxel it matches Poisson statistics and is three times faster on GB-scale strips.
    """
    mean = np.concatenate([_render(h, metadata.aoi_height, x0, x1) for h in halves], axis=2)
    counts = rng.standard_normal(mean.shape, dtype=np.float32)
    counts *= np.sqrt(mean)
    counts += mean
    np.rint(counts, out=counts)
    np.clip(counts, 0, np.iinfo(metadata.dtype).max, out=counts)
    return counts.astype(metadata.dtype)


# --------------------------------------------------------------------------- simulation


@dataclass(frozen=True, slots=True)
class _StripJob:
    slice_id: int
    channel: int
    strip: int
    folder: Path


def simulate_lsm(
    config: LSMScanConfig,
    raw_folder: Path,
    *,
    slices: int = 1,
    channels: int = 2,
    seed: int = 0,
    pace: Pace = INSTANT,
    stop: StopSignal | None = None,
    with_info_file: bool = True,
    size: LSMSize | None = None,
) -> LSMGroundTruth:
    """Write every strip folder of ``slices`` slices and return the ground truth."""
    strips = iter_simulate_lsm(
        config, raw_folder, slices=slices, channels=channels, seed=seed, pace=pace, stop=stop,
        with_info_file=with_info_file, size=size,
    )
    while True:
        try:
            next(strips)
        except StopIteration as done:
            return done.value


def iter_simulate_lsm(
    config: LSMScanConfig,
    raw_folder: Path,
    *,
    slices: int = 1,
    channels: int = 2,
    seed: int = 0,
    pace: Pace = INSTANT,
    stop: StopSignal | None = None,
    with_info_file: bool = True,
    size: LSMSize | None = None,
) -> Generator[Path, None, LSMGroundTruth]:
    """Write strip folders as the rig does, yielding each one once all its spool files are complete.

    Order: slice by slice, strip by strip, channel 1 then channel 2. With a live ``pace`` every
    spool file appears and grows in place; setting ``stop`` ends the run after the current piece
    (the unfinished strip is neither yielded nor in the ground truth). The camera geometry is
    that of the ``size`` preset, by default the one ``lsm_camera_for(config)`` picks; the config
    must accept its strips (size and file-count gates).
    """
    camera = lsm_camera_for(config) if size is None else lsm_camera(size)
    if not _accepts(config, camera):
        raise ValueError(
            f"simulated {size} strips ({camera.strip_bytes} bytes, {camera.files_per_strip + 2} "
            f"files) would fail the config's strip_folder_size_threshold "
            f"{config.strip_folder_size_threshold} GB or min_strip_files {config.min_strip_files}"
        )
    if slices < 1 or channels not in (1, 2):
        raise ValueError(f"need slices >= 1 and channels in (1, 2), found {slices} and {channels}")
    raw_folder = Path(raw_folder)
    root = raw_folder / GROUND_TRUTH_FOLDER
    root.mkdir(parents=True, exist_ok=True)
    if with_info_file:
        _write_info(config, camera)
    strips: list[LSMStripTruth] = []
    volumes: dict[tuple[int, int], Path] = {}
    halves: dict[tuple[int, int], tuple[_Population, _Population]] = {}
    for job in _jobs(config, raw_folder, slices, channels):
        key = (job.slice_id, job.channel)
        if key not in halves:
            halves[key] = _halves(camera, config.strips_per_slice, seed, key)
        data = _write_strip(job, camera, halves[key], seed, pace, stop)
        if data is None:
            break
        fresh = key not in volumes
        volumes[key] = root / _volume_name(*key)
        strips.append(_store_truth(job, camera, config, data, volumes[key], fresh=fresh))
        truth = LSMGroundTruth(root, camera, tuple(strips), dict(volumes))
        atomic_write_text(root / MANIFEST_NAME, json.dumps(_manifest(truth, raw_folder), indent=1))
        yield job.folder
    return LSMGroundTruth(root, camera, tuple(strips), dict(volumes))


def _write_info(config: LSMScanConfig, camera: LSMCamera) -> None:
    if config.info_file is None:
        raise ValueError("with_info_file needs config.info_file, the path to write it to")
    write_camera_info(config.info_file, camera.frames_per_strip)


def _jobs(
    config: LSMScanConfig, raw_folder: Path, slices: int, channels: int
) -> Generator[_StripJob, None, None]:
    for slice_id in range(1, slices + 1):
        for strip in range(1, config.strips_per_slice + 1):
            for channel in range(1, channels + 1):
                name = format_lsm_strip_folder(slice_id, strip, channel)
                yield _StripJob(slice_id, channel, strip, raw_folder / name)


def _halves(
    camera: LSMCamera, strips_per_slice: int, seed: int, key: tuple[int, int]
) -> tuple[_Population, _Population]:
    m = camera.metadata
    length = strips_per_slice * camera.frames_per_strip
    widths = (m.aoi_width // 2, m.aoi_width - m.aoi_width // 2)
    beads, cells = (
        _population(kind, (m.aoi_height, width, length), np.random.default_rng([seed, *key, 0, i]))
        for i, (kind, width) in enumerate(zip(_HALF_KINDS, widths, strict=True))
    )
    return beads, cells


def _write_strip(
    job: _StripJob,
    camera: LSMCamera,
    halves: tuple[_Population, _Population],
    seed: int,
    pace: Pace,
    stop: StopSignal | None,
) -> np.ndarray | None:
    """Write one strip's spool set; its data ``(z, y, x)``, or None if stopped before the end."""
    m = camera.metadata
    per_file = m.images_per_file
    write_zyla_metadata(job.folder, m)
    data = np.empty((m.aoi_height, m.aoi_width, camera.frames_per_strip), dtype=m.dtype)
    strip_x0 = (job.strip - 1) * camera.frames_per_strip
    for index in range(camera.files_per_strip):
        if stop is not None and stop.is_set():
            return None
        rng = np.random.default_rng([seed, job.slice_id, job.channel, 1, job.strip, index])
        x0 = strip_x0 + index * per_file
        frames = _frames(halves, m, x0, x0 + per_file, rng)
        path = job.folder / spool_file_name(index)
        if not write_progressively(path, encode_spool_file(frames, m), pace, stop):
            return None
        data[:, :, index * per_file : (index + 1) * per_file] = frames.transpose(1, 2, 0)
    return data


def _store_truth(
    job: _StripJob,
    camera: LSMCamera,
    config: LSMScanConfig,
    data: np.ndarray,
    volume: Path,
    *,
    fresh: bool,
) -> LSMStripTruth:
    """Put the strip into its slice volume (created by its first strip) and save its MIP."""
    m = camera.metadata
    length = config.strips_per_slice * camera.frames_per_strip
    shape = (m.aoi_height, m.aoi_width, length)
    mode = "w+" if fresh else "r+"
    stored = np.lib.format.open_memmap(volume, mode=mode, dtype=m.dtype, shape=shape)
    x0 = (job.strip - 1) * camera.frames_per_strip
    stored[:, :, x0 : x0 + data.shape[2]] = data
    stored.flush()
    del stored
    mip = np.zeros((m.row_pixels, data.shape[2]), dtype=np.uint16)
    mip[: m.aoi_width] = data.max(axis=0)
    mip_path = volume.parent / _mip_name(job.folder.name)
    with atomic_path(mip_path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, mip)
    identity = LSMStripId(config.project_name, job.slice_id, job.channel, job.strip)
    return LSMStripTruth(job.folder, identity, volume, (x0, x0 + data.shape[2]), mip_path)
