"""What one raw unit of work looks like on disk, per modality (spec 6.3).

PS-OCT: one candidate per raw tile file of the configured format, keyed by its tile identity
(source mosaic shifted by the slice offset, filtered by the mosaic ranges). A file whose size is
not yet the size its geometry implies is still being written: it gets the longer
``incomplete_grace`` before it is handed on, so a truncated file ends up failing with the
reader's error instead of waiting forever. LSM: one candidate per strip folder whose name
parses and that holds more than ``min_strip_files`` files.

Discovery only lists and stats; it never opens files. The engine checks readability when a
candidate is handed on, and a dotted (hidden) or temporary name is never a candidate.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path

from opticstream_napari.config import LSMScanConfig, PSOCTScanConfig
from opticstream_napari.engine.pipelines.psoct_tile import bucket_of, expected_raw_bytes, input_kind
from opticstream_napari.engine.watch import Candidate
from opticstream_napari.identity import PSOCTTileId
from opticstream_napari.naming import (
    LSM_PROCESSED_FOLDER,
    NameParseError,
    parse_lsm_strip_folder,
    parse_psoct_raw_tile,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MosaicRanges:
    """Inclusive ranges of source mosaics to process, as written ``"1:999999"`` or ``"1:2,5:6"``."""

    spans: tuple[tuple[int, int], ...] = ((1, 999_999),)

    @classmethod
    def parse(cls, text: str | None) -> MosaicRanges:
        if text is None or not text.strip():
            return cls()
        spans = []
        for part in text.split(","):
            first, sep, last = part.strip().partition(":")
            try:
                span = (int(first), int(last) if sep else int(first))
            except ValueError:
                raise ValueError(
                    f"mosaic ranges must read like '1:999999' or '1:2,5:6', found {text!r}"
                ) from None
            if not 1 <= span[0] <= span[1]:
                raise ValueError(f"mosaic range {part.strip()!r} must be first:last with 1 <= first <= last")
            spans.append(span)
        return cls(tuple(spans))

    def __contains__(self, mosaic: object) -> bool:
        return isinstance(mosaic, int) and any(a <= mosaic <= b for a, b in self.spans)

    def __str__(self) -> str:
        return ",".join(f"{a}:{b}" for a, b in self.spans)


def _visible(name: str) -> bool:
    return not name.startswith(".")


@dataclass
class PSOCTDiscovery:
    """Raw tile files of ``folder`` as candidates keyed by :class:`PSOCTTileId`."""

    config: PSOCTScanConfig
    folder: Path
    mosaic_ranges: MosaicRanges = field(default_factory=MosaicRanges)
    slice_offset: int = 0
    incomplete_grace: float = 120.0
    _names: dict[str, tuple[PSOCTTileId, int] | None] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._kind = input_kind(self.config)
        self._expected = {b: expected_raw_bytes(self.config, b) for b in ("normal", "tilted")}

    def __call__(self) -> dict[Hashable, Candidate]:
        found: dict[Hashable, Candidate] = {}
        with os.scandir(self.folder) as entries:
            for entry in entries:
                if entry.name not in self._names:
                    self._names[entry.name] = self._tile_of(entry.name)
                known = self._names[entry.name]
                if known is None or not entry.is_file():
                    continue
                tile, size = known
                try:
                    stat = entry.stat()
                except OSError:
                    continue
                found[tile] = Candidate(
                    tile, (Path(entry.path),), ((entry.name, stat.st_size, stat.st_mtime_ns),),
                    None if stat.st_size == size else self.incomplete_grace,
                )
        return found

    def _tile_of(self, name: str) -> tuple[PSOCTTileId, int] | None:
        """The tile a file name is (and the size it must reach), or None if it is none of ours;
        computed once per name."""
        if not _visible(name):
            return None
        try:
            raw = parse_psoct_raw_tile(name)
        except NameParseError:
            return None
        if raw.kind is not self._kind or raw.mosaic not in self.mosaic_ranges:
            return None
        config = self.config
        acq = config.acquisition
        try:
            tile = raw.identity(config.project_name, config.mosaics_per_slice, acq.grid_size_y, self.slice_offset)
        except ValueError as error:
            log.warning("ignoring raw file %s: %s", name, error)
            return None
        bucket = bucket_of(config, tile.mosaic)
        if tile.tile > acq.grid_size_x(bucket) * acq.grid_size_y:
            log.warning("ignoring raw file %s: image %d is outside the %s grid of %d×%d tiles", name, tile.tile,
                        bucket, acq.grid_size_x(bucket), acq.grid_size_y)
            return None
        return tile, self._expected[bucket]


@dataclass
class LSMDiscovery:
    """Strip folders of ``folder`` as candidates keyed by :class:`LSMStripId`."""

    config: LSMScanConfig
    folder: Path
    slice_offset: int = 0

    def __call__(self) -> dict[Hashable, Candidate]:
        found: dict[Hashable, Candidate] = {}
        with os.scandir(self.folder) as entries:
            for entry in entries:
                if not _visible(entry.name) or entry.name.startswith(LSM_PROCESSED_FOLDER) or not entry.is_dir():
                    continue
                try:
                    strip = parse_lsm_strip_folder(entry.name).identity(self.config.project_name, self.slice_offset)
                except (NameParseError, ValueError):
                    continue
                candidate = _strip_candidate(strip, Path(entry.path), self.config.min_strip_files)
                if candidate is not None:
                    found[strip] = candidate
        return found


def _strip_candidate(strip: Hashable, folder: Path, min_files: int) -> Candidate | None:
    """The folder's files and fingerprint, or None while it holds too few files (or vanished)."""
    try:
        with os.scandir(folder) as entries:
            files = [(e.path, e.name, e.stat()) for e in entries if e.is_file() and _visible(e.name)]
    except OSError:
        return None
    if len(files) <= min_files:
        return None
    files.sort(key=lambda item: item[1])
    return Candidate(
        strip,
        tuple(Path(path) for path, _, _ in files),
        tuple((name, stat.st_size, stat.st_mtime_ns) for _, name, stat in files),
        folder=folder,
    )
