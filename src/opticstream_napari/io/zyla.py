"""Andor Zyla spool sets: the raw format of the light-sheet cameras, read lazily and written.

A strip folder holds ``Spooled files.sifx`` (format marker), ``acquisitionmetadata.ini`` and
numbered ``<10 reversed digits>spool.dat`` files. Each spool file is a little-endian array of
``ImagesPerFile`` frames; each frame is ``num_rows`` rows of ``AOIStride`` bytes, where the camera
appends one or two zero rows (``num_rows`` is ``AOIHeight + 1`` if odd, else ``AOIHeight + 2``) and
may pad rows beyond ``AOIWidth`` pixels. The strip volume is ``(num_rows, row_pixels, frames)``,
the OME axes ``z, y, x``: camera rows, camera columns, frames along the stage sweep.

Padding is kept by default, as the original converter does, so outputs have the same shape as
the original's; ``crop_padding=True`` drops the padding rows and any columns beyond ``AOIWidth``.
"""

from __future__ import annotations

import configparser
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io

from opticstream_napari.naming import (
    LSM_ACQUISITION_INI,
    LSM_SPOOL_MARKER,
    NameParseError,
    parse_spool_file_name,
    spool_file_name,
)

_ENCODINGS: dict[str, np.dtype] = {"Mono16": np.dtype("<u2"), "Mono8": np.dtype("u1")}
_SPOOL_GLOB = "*spool.dat"


class SpoolFormatError(ValueError):
    """A spool set that breaks the Zyla format; names the file, what was expected and found."""

    def __init__(self, path: Path, expected: str, found: str) -> None:
        self.path = path
        self.expected = expected
        self.found = found
        super().__init__(f"{path}: expected {expected}, found {found}")

    def __reduce__(self) -> tuple[type, tuple[object, ...]]:
        return type(self), (self.path, self.expected, self.found)  # crosses to and from worker processes


@dataclass(frozen=True, slots=True)
class ZylaMetadata:
    """The frame geometry an ``acquisitionmetadata.ini`` declares.

    ``image_size_bytes`` is recorded, not checked: file sizes are checked against the geometry.
    It defaults to the padded frame size (num_rows x AOIStride).
    """

    aoi_height: int
    aoi_width: int
    aoi_stride: int
    pixel_encoding: str
    images_per_file: int
    image_size_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.pixel_encoding not in _ENCODINGS:
            raise ValueError(
                f"PixelEncoding must be one of {sorted(_ENCODINGS)}, found {self.pixel_encoding!r}"
            )
        for name in ("aoi_height", "aoi_width", "aoi_stride", "images_per_file"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, found {getattr(self, name)}")
        bpp = self.bytes_per_pixel
        if self.aoi_stride % bpp or self.aoi_stride < self.aoi_width * bpp:
            raise ValueError(
                f"AOIStride must be a multiple of {bpp} bytes and >= AOIWidth*{bpp} = "
                f"{self.aoi_width * bpp}, found {self.aoi_stride}"
            )
        if self.image_size_bytes is None:
            object.__setattr__(self, "image_size_bytes", self.frame_bytes)

    @property
    def dtype(self) -> np.dtype:
        return _ENCODINGS[self.pixel_encoding]

    @property
    def bytes_per_pixel(self) -> int:
        return self.dtype.itemsize

    @property
    def num_rows(self) -> int:
        """Rows stored per frame: the camera pads every frame with one or two rows."""
        return self.aoi_height + (1 if self.aoi_height % 2 else 2)

    @property
    def row_pixels(self) -> int:
        return self.aoi_stride // self.bytes_per_pixel

    @property
    def frame_bytes(self) -> int:
        return self.num_rows * self.aoi_stride

    @property
    def file_bytes(self) -> int:
        return self.images_per_file * self.frame_bytes

    @property
    def file_shape(self) -> tuple[int, int, int]:
        return (self.images_per_file, self.num_rows, self.row_pixels)


@dataclass(frozen=True, slots=True)
class CameraInfo:
    """The acquisition's own frame count, from the info ``.mat`` (struct ``info.camera``)."""

    total_frames: int
    background_frames: int = 0

    def files_needed(self, images_per_file: int) -> int:
        """Spool files holding the acquired frames; the camera may leave extra files behind."""
        return math.ceil((self.total_frames - self.background_frames) / images_per_file)


# --------------------------------------------------------------------------- metadata


def read_zyla_metadata(folder: Path) -> ZylaMetadata:
    """Parse ``acquisitionmetadata.ini`` (UTF-8 with or without BOM) of a strip folder."""
    ini = Path(folder) / LSM_ACQUISITION_INI
    if not ini.is_file():
        raise SpoolFormatError(ini, "the camera's acquisition metadata file", "no such file")
    parser = configparser.ConfigParser()
    try:
        parser.read_string(ini.read_text(encoding="utf-8-sig"), source=str(ini))
    except (configparser.Error, UnicodeDecodeError) as error:
        raise SpoolFormatError(ini, "an INI file", f"unreadable content ({error})") from error
    encoding = _ini_value(parser, ini, "data", "PixelEncoding")
    if encoding not in _ENCODINGS:
        raise SpoolFormatError(ini, f"PixelEncoding in {sorted(_ENCODINGS)}", repr(encoding))
    try:
        return ZylaMetadata(
            aoi_height=_ini_int(parser, ini, "data", "AOIHeight"),
            aoi_width=_ini_int(parser, ini, "data", "AOIWidth"),
            aoi_stride=_ini_int(parser, ini, "data", "AOIStride"),
            pixel_encoding=encoding,
            images_per_file=_ini_int(parser, ini, "multiimage", "ImagesPerFile"),
            image_size_bytes=_ini_int(parser, ini, "data", "ImageSizeBytes"),
        )
    except SpoolFormatError:
        raise
    except ValueError as error:
        raise SpoolFormatError(ini, "a consistent frame geometry", str(error)) from error


def _ini_value(parser: configparser.ConfigParser, ini: Path, section: str, key: str) -> str:
    if not parser.has_option(section, key):
        raise SpoolFormatError(ini, f"key {key} in section [{section}]", "no such key")
    return parser.get(section, key).strip()


def _ini_int(parser: configparser.ConfigParser, ini: Path, section: str, key: str) -> int:
    value = _ini_value(parser, ini, section, key)
    try:
        return int(value)
    except ValueError:
        raise SpoolFormatError(ini, f"an integer for {key}", repr(value)) from None


def read_camera_info(path: Path) -> CameraInfo:
    """Read ``info.camera.kineticSeriesLength`` and ``backgroundFramesNum`` from an info .mat."""
    path = Path(path)
    if not path.is_file():
        raise SpoolFormatError(path, "a camera info .mat file", "no such file")
    try:
        mat = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    except (ValueError, OSError) as error:
        found = f"unreadable content ({error})"
        raise SpoolFormatError(path, "a MATLAB .mat file", found) from error
    camera = getattr(mat.get("info"), "camera", None)
    if camera is None:
        raise SpoolFormatError(path, "a struct info.camera", "no such struct")
    values = {}
    for field in ("kineticSeriesLength", "backgroundFramesNum"):
        if not hasattr(camera, field):
            raise SpoolFormatError(path, f"field info.camera.{field}", "no such field")
        values[field] = int(getattr(camera, field))
    return CameraInfo(values["kineticSeriesLength"], values["backgroundFramesNum"])


# --------------------------------------------------------------------------- spool files


def list_spool_files(
    folder: Path, metadata: ZylaMetadata, info: CameraInfo | None = None
) -> list[Path]:
    """Spool files in acquisition order, checked for names, gaps and sizes.

    With ``info`` only the files holding the acquired frames are kept (trailing ones dropped).
    """
    folder = Path(folder)
    marker = folder / LSM_SPOOL_MARKER
    if not marker.is_file():
        raise SpoolFormatError(marker, "the Zyla spool marker file", "no such file")
    indexed = sorted((_spool_index(path), path) for path in folder.glob(_SPOOL_GLOB))
    for expected, (index, path) in enumerate(indexed):
        if index != expected:
            raise SpoolFormatError(
                path, f"spool index {expected} ({spool_file_name(expected)})", f"index {index}"
            )
    files = [path for _, path in indexed]
    if info is not None:
        needed = info.files_needed(metadata.images_per_file)
        if needed > len(files) or needed < 1:
            raise SpoolFormatError(
                folder, f"{needed} spool files for {info.total_frames} frames", f"{len(files)}"
            )
        files = files[:needed]
    if not files:
        raise SpoolFormatError(folder, "at least one spool file", "none")
    for path in files:
        size = path.stat().st_size
        if size != metadata.file_bytes:
            raise SpoolFormatError(
                path,
                f"{metadata.file_bytes} bytes ({metadata.images_per_file} frames of "
                f"{metadata.frame_bytes} bytes)",
                f"{size} bytes",
            )
    return files


def _spool_index(path: Path) -> int:
    try:
        return parse_spool_file_name(path.name)
    except NameParseError as error:
        raise SpoolFormatError(path, error.expected, "a name that does not parse") from None


class ZylaStrip:
    """A strip folder opened lazily: nothing is read until frames are asked for."""

    axes: tuple[str, str, str] = ("z", "y", "x")

    def __init__(
        self, folder: Path, *, info_file: Path | None = None, crop_padding: bool = False
    ) -> None:
        self.folder = Path(folder)
        self.metadata = read_zyla_metadata(self.folder)
        self.info = read_camera_info(info_file) if info_file is not None else None
        self.files = tuple(list_spool_files(self.folder, self.metadata, self.info))
        self.crop_padding = crop_padding

    @property
    def num_frames(self) -> int:
        return len(self.files) * self.metadata.images_per_file

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(z, y, x)`` = (camera rows, camera columns, frames)."""
        rows, cols = self._rows_cols()
        return (rows, cols, self.num_frames)

    @property
    def dtype(self) -> np.dtype:
        return self.metadata.dtype

    def _rows_cols(self) -> tuple[int, int]:
        m = self.metadata
        return (m.aoi_height, m.aoi_width) if self.crop_padding else (m.num_rows, m.row_pixels)

    def _read_rows(self, index: int, frames: range, r0: int, r1: int) -> np.ndarray:
        """Rows ``[r0, r1)`` (full stride) of ``frames`` of spool file ``index``: one read each.

        Plain reads with the kernel's readahead off, not a memory map: a fault in a mapping reads
        the device's whole readahead window around it (8 MiB on the processing VMs), which made a
        25 GB strip read 5.8× its size from disk when blocks take some rows of every frame.
        """
        m = self.metadata
        out = np.empty((len(frames), r1 - r0, m.row_pixels), dtype=self.dtype)
        if not out.size:
            return out
        path = self.files[index]
        with open(path, "rb", buffering=0) as handle:
            fd = handle.fileno()
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
            for i, frame in enumerate(frames):
                view = memoryview(out[i]).cast("B")
                offset = frame * m.frame_bytes + r0 * m.aoi_stride
                got = os.preadv(fd, [view], offset)
                if got != view.nbytes:
                    raise SpoolFormatError(path, f"{view.nbytes} bytes at offset {offset}", f"{got} bytes")
        return out

    def read_frames(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Frames ``[start, stop)`` as an in-memory ``(z, y, x)`` array; reads only their files."""
        stop = self.num_frames if stop is None else stop
        if not 0 <= start <= stop <= self.num_frames:
            raise IndexError(f"frame range [{start}, {stop}) outside [0, {self.num_frames})")
        return self[:, :, start:stop]

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        """A ``(z, y, x)`` block, read from only the spool files, rows and columns it covers.

        Each file's frames are transposed into place once, so writing a strip by blocks reads
        and transposes every byte once (a lazy array of whole-file chunks re-reads each file
        for every block that crosses it).
        """
        (r0, r1), (c0, c1), (f0, f1) = _ranges(key, self.shape)
        per_file = self.metadata.images_per_file
        out = np.empty((r1 - r0, c1 - c0, f1 - f0), dtype=self.dtype)
        for index in range(f0 // per_file, math.ceil(f1 / per_file)):
            first = index * per_file
            lo, hi = max(f0, first), min(f1, first + per_file)
            block = self._read_rows(index, range(lo - first, hi - first), r0, r1)[:, :, c0:c1]
            out[:, :, lo - f0 : hi - f0] = block.transpose(1, 2, 0)
        return out


def _ranges(key: tuple[slice, ...], shape: tuple[int, ...]) -> list[tuple[int, int]]:
    if not isinstance(key, tuple) or len(key) != len(shape) or not all(isinstance(k, slice) for k in key):
        raise TypeError(f"a strip is read by a tuple of {len(shape)} slices, found {key!r}")
    ranges = []
    for k, n in zip(key, shape, strict=True):
        start, stop, step = k.indices(n)
        if step != 1:
            raise ValueError(f"a strip is read by contiguous slices, found step {step}")
        ranges.append((start, max(start, stop)))
    return ranges


# --------------------------------------------------------------------------- writing


def write_zyla_metadata(folder: Path, metadata: ZylaMetadata) -> Path:
    """Write the ini as the camera does (UTF-8 with BOM) plus the empty spool marker."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    text = (
        "[data]\n"
        f"AOIHeight = {metadata.aoi_height}\n"
        f"AOIWidth = {metadata.aoi_width}\n"
        f"AOIStride = {metadata.aoi_stride}\n"
        f"PixelEncoding = {metadata.pixel_encoding}\n"
        f"ImageSizeBytes = {metadata.image_size_bytes}\n"
        "\n[multiimage]\n"
        f"ImagesPerFile = {metadata.images_per_file}\n"
    )
    (folder / LSM_ACQUISITION_INI).write_text(text, encoding="utf-8-sig")
    (folder / LSM_SPOOL_MARKER).touch()
    return folder / LSM_ACQUISITION_INI


def pad_frames(frames: np.ndarray, metadata: ZylaMetadata) -> np.ndarray:
    """``(n, AOIHeight, AOIWidth)`` images -> ``(n, num_rows, row_pixels)`` with zero padding."""
    n, height, width = frames.shape
    if (height, width) != (metadata.aoi_height, metadata.aoi_width):
        raise ValueError(
            f"frames must be (n, {metadata.aoi_height}, {metadata.aoi_width}), found {frames.shape}"
        )
    padded = np.zeros((n, metadata.num_rows, metadata.row_pixels), dtype=metadata.dtype)
    padded[:, :height, :width] = frames
    return padded


def encode_spool_file(frames: np.ndarray, metadata: ZylaMetadata) -> np.ndarray:
    """The exact content of one spool file holding ``ImagesPerFile`` images, padding included."""
    if frames.shape[0] != metadata.images_per_file:
        raise ValueError(
            f"a spool file holds {metadata.images_per_file} frames, found {frames.shape[0]}"
        )
    return pad_frames(frames, metadata)


def write_spool_set(
    folder: Path, metadata: ZylaMetadata, frames: np.ndarray | Iterable[np.ndarray]
) -> int:
    """Write a whole spool set at once; returns the number of spool files written.

    ``frames`` is ``(n, AOIHeight, AOIWidth)`` with ``n`` a multiple of ``ImagesPerFile``, or an
    iterable of per-file blocks so that strips larger than memory can be written. The simulator
    writes files one by one at the camera's pace instead (``simulate.lsm``).
    """
    folder = Path(folder)
    blocks = _per_file(frames, metadata) if isinstance(frames, np.ndarray) else frames
    write_zyla_metadata(folder, metadata)
    count = 0
    for index, block in enumerate(blocks):
        encode_spool_file(block, metadata).tofile(folder / spool_file_name(index))
        count += 1
    return count


def _per_file(frames: np.ndarray, metadata: ZylaMetadata) -> list[np.ndarray]:
    per_file = metadata.images_per_file
    if frames.ndim != 3 or frames.shape[0] % per_file:
        raise ValueError(f"frames must be (k*{per_file}, h, w), found {frames.shape}")
    return [frames[i : i + per_file] for i in range(0, frames.shape[0], per_file)]


def write_camera_info(path: Path, total_frames: int, background_frames: int = 0) -> Path:
    """Write the info .mat with struct ``info.camera`` as the acquisition software does."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    camera = {
        "kineticSeriesLength": float(total_frames),
        "backgroundFramesNum": float(background_frames),
    }
    scipy.io.savemat(path, {"info": {"camera": camera}})
    return path
