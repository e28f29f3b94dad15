"""uint16 MIP TIFFs of light-sheet strips and channels: written plainly, read mapped.

The engine writes MIPs uncompressed and contiguous, so readers map them and a strided or
row-range read touches only the pages it needs; a channel mosaic is filled strip by strip
through such a map, so the step holds one strip in memory, not the slice.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tifffile

from opticstream_napari.io.atomic import atomic_path

MIP_DTYPE = np.dtype(np.uint16)


class MipShapeError(ValueError):
    """A strip MIP is not a 2D uint16 image of its channel's shape; names the file and both."""


def write_mip(path: Path, data: np.ndarray) -> Path:
    """The MIP as a plain uint16 TIFF, renamed into place once complete."""
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, np.asarray(data, dtype=MIP_DTYPE))
    return path


def read_mip(path: str | os.PathLike[str]) -> np.ndarray:
    """The MIP mapped read-only when stored plainly (as the engine writes it), else read whole."""
    try:
        return tifffile.memmap(path, mode="r")
    except ValueError:
        return tifffile.imread(path)


def mip_shape(path: Path) -> tuple[int, ...]:
    """Shape from the TIFF's header, checked to be a 2D uint16 image (nothing else is read)."""
    try:
        with tifffile.TiffFile(path) as tiff:
            series = tiff.series[0]
            shape, dtype = tuple(series.shape), np.dtype(series.dtype)
    except (tifffile.TiffFileError, IndexError) as error:
        raise MipShapeError(f"{path}: a strip MIP is a 2D uint16 TIFF, found an unreadable file ({error})") from None
    if len(shape) != 2 or dtype != MIP_DTYPE:
        raise MipShapeError(f"{path}: a strip MIP is a 2D uint16 image, found shape {shape} of {dtype}")
    return shape


def common_mip_shape(paths: list[Path]) -> tuple[int, int]:
    """The shape every MIP of ``paths`` has; an error naming the first that differs from the first MIP."""
    first = mip_shape(paths[0])
    for path in paths[1:]:
        shape = mip_shape(path)
        if shape != first:
            raise MipShapeError(f"{path}: its MIP is {shape}, {paths[0].name}'s is {first}; strips of a "
                                f"channel must have the same camera columns and frames")
    return first[0], first[1]


def mapped_mip(path: Path, shape: tuple[int, int]) -> np.memmap:
    """A new plain uint16 TIFF at ``path`` of ``shape``, mapped for writing."""
    return tifffile.memmap(path, shape=shape, dtype=MIP_DTYPE)
