"""Fiji "Grid/Collection stitching" TileConfiguration files, read and written.

Users bring positions from Fiji or check ours there. The format::

    # Define the number of dimensions we are working on
    dim = 2

    # Define the image coordinates
    mosaic_001_image_0001_aip.nii; ; (0.0, 0.0)

Each data line is ``name; series; (x, y)`` with an optional series number. ``x`` is Fiji's
horizontal axis (our grid columns, array axis 1) and ``y`` its vertical one; our positions are
``(y, x)``, so :func:`entries_from_positions` and :func:`positions_from_entries` swap them.
Comments and blank lines are ignored; anything else that does not parse is an error naming the
file and line. The ideal file and Fiji's ``.registered.txt`` share the format.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from opticstream_napari.io.atomic import atomic_write_text
from opticstream_napari.naming import tile_configuration_name

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_DIM = re.compile(r"^dim\s*=\s*(\d+)$", re.IGNORECASE)
_COORDS = re.compile(rf"^\(\s*({_NUMBER})\s*,\s*({_NUMBER})\s*\)$")
_HEADER = (
    "# Define the number of dimensions we are working on\n"
    "dim = 2\n"
    "\n"
    "# Define the image coordinates\n"
)


class TileConfigurationError(ValueError):
    """A TileConfiguration line that does not parse; the message names file and line."""


@dataclass(frozen=True, slots=True)
class TileEntry:
    """One tile of a TileConfiguration: file name, Fiji ``(x, y)``, optional series number."""

    name: str
    x: float
    y: float
    series: int | None = None


def parse_tile_configuration(text: str, source: str = "<text>") -> list[TileEntry]:
    """Entries of a TileConfiguration text; ``source`` names it in errors."""
    entries: list[TileEntry] = []
    seen: set[str] = set()
    dim: int | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            match = _DIM.match(line)
            if match:
                if dim is not None:
                    raise ValueError("a second 'dim' line")
                dim = int(match.group(1))
                if dim != 2:
                    raise ValueError(f"only 2D configurations are supported, found dim = {dim}")
                continue
            if dim is None:
                raise ValueError("expected 'dim = 2' before the first tile")
            entry = _parse_entry(line)
            if entry.name in seen:
                raise ValueError(f"tile {entry.name!r} is listed twice")
        except ValueError as error:
            raise TileConfigurationError(f"{source}, line {number}: {error}: {line!r}") from None
        seen.add(entry.name)
        entries.append(entry)
    if dim is None:
        raise TileConfigurationError(f"{source}: no 'dim = 2' line")
    return entries


def _parse_entry(line: str) -> TileEntry:
    parts = line.rsplit(";", 2)
    if len(parts) != 3:
        raise ValueError("expected 'name; series; (x, y)'")
    name, series, coords = (p.strip() for p in parts)
    if not name:
        raise ValueError("empty file name")
    if series and not series.isdigit():
        raise ValueError(f"series must be empty or a whole number, found {series!r}")
    match = _COORDS.match(coords)
    if not match:
        raise ValueError("coordinates must read '(x, y)' with two numbers")
    return TileEntry(name, float(match.group(1)), float(match.group(2)),
                     int(series) if series else None)


def format_tile_configuration(entries: Iterable[TileEntry]) -> str:
    """The text Fiji writes, numbers in shortest round-tripping form."""
    lines = [
        f"{e.name}; {'' if e.series is None else e.series}; ({float(e.x)!r}, {float(e.y)!r})"
        for e in entries
    ]
    return _HEADER + "".join(line + "\n" for line in lines)


def read_tile_configuration(path: str | os.PathLike[str]) -> list[TileEntry]:
    path = Path(path)
    return parse_tile_configuration(path.read_text(encoding="utf-8"), source=str(path))


def write_tile_configuration(path: str | os.PathLike[str], entries: Iterable[TileEntry]) -> Path:
    """Write atomically, so Fiji or a watcher never reads half a file."""
    return atomic_write_text(path, format_tile_configuration(entries))


def tile_configuration_path(
    folder: str | os.PathLike[str], bucket: str, *, registered: bool = False
) -> Path:
    """``<folder>/TileConfiguration_<bucket>[.registered].txt``."""
    return Path(folder) / tile_configuration_name(bucket, registered=registered)


def entries_from_positions(
    names: Mapping[int, str], positions: Mapping[int, tuple[float, float]]
) -> list[TileEntry]:
    """Entries in tile order from our ``(y, x)`` positions and each tile's file name."""
    missing = sorted(set(positions) - set(names))
    if missing:
        raise ValueError(f"no file name for tiles {missing}")
    return [TileEntry(names[t], float(positions[t][1]), float(positions[t][0]))
            for t in sorted(positions)]


def positions_from_entries(
    entries: Iterable[TileEntry], names: Mapping[int, str], source: str = "<entries>"
) -> dict[int, tuple[float, float]]:
    """Our ``(y, x)`` per tile, matching entries to tiles by file name."""
    by_name = {e.name: e for e in entries}
    missing = [name for name in names.values() if name not in by_name]
    if missing:
        raise TileConfigurationError(f"{source}: no line for {', '.join(sorted(missing))}")
    return {t: (by_name[name].y, by_name[name].x) for t, name in names.items()}
