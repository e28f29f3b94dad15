"""Terminal output of the engine commands: a live progress line and the per-slice status table."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import TextIO

from opticstream_napari.engine.messages import (
    ChannelStitched,
    ChannelVolumeStitched,
    EngineMessage,
    MosaicFinalised,
    SliceDone,
    UnitCompleted,
    UnitFailed,
    UnitStarted,
    VolumesStitched,
)
from opticstream_napari.state.lifecycle import Lifecycle
from opticstream_napari.state.summary import SliceSummary

_UNIT_LEVELS = ("tile", "strip")


class ProgressLine:
    """Counts engine messages and redraws one line (a TTY) or prints a line per finished group.

    Unit failures and finished mosaics, volumes, channels and slices are always printed on their own line,
    so a log of the terminal keeps them.
    """

    def __init__(self, label: str, stream: TextIO | None = None, interval: float = 0.25) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.interval = interval
        self.running = 0
        self.done = 0
        self.failed = 0
        self.groups = 0
        self.slices = 0
        self._start = time.monotonic()
        self._drawn = 0.0
        self._live = self.stream.isatty()

    def __call__(self, message: EngineMessage) -> None:
        unit = getattr(message, "ident", None)
        is_unit = unit is not None and unit.level in _UNIT_LEVELS
        if isinstance(message, UnitStarted) and is_unit:
            self.running += 1
        elif isinstance(message, UnitCompleted) and is_unit:
            self.running -= 1
            self.done += 1
        elif isinstance(message, UnitFailed):
            if is_unit:
                self.running -= 1
                self.failed += 1
            self._say(f"FAILED {message.ident}: {message.error}")
        elif isinstance(message, MosaicFinalised | ChannelStitched):
            self.groups += 1
            self._say(f"stitched {getattr(message, 'mosaic', None) or getattr(message, 'channel', None)}")
        elif isinstance(message, VolumesStitched):
            self._say(f"stitched the volumes of {message.mosaic}")
        elif isinstance(message, ChannelVolumeStitched):
            self._say(f"stitched the volumes of {message.channel}")
        elif isinstance(message, SliceDone):
            self.slices += 1
            self._say(f"completed {message.slice}")
        self._draw()

    def line(self) -> str:
        rate = self.done / max(time.monotonic() - self._start, 1e-9)
        return (f"[{self.label}] {self.done} units done, {self.running} running, {self.failed} failed"
                f" | {self.groups} stitched | {self.slices} slices | {rate:.2f} units/s")

    def _say(self, text: str) -> None:
        prefix = "\r\x1b[K" if self._live else ""
        print(f"{prefix}{text}", file=self.stream, flush=True)

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self._live or (not force and now - self._drawn < self.interval):
            return
        self._drawn = now
        print(f"\r\x1b[K{self.line()}", end="", file=self.stream, flush=True)

    def finish(self) -> None:
        if self._live:
            print(f"\r\x1b[K{self.line()}", file=self.stream, flush=True)
        else:
            print(self.line(), file=self.stream, flush=True)


def _plural(level: str) -> str:
    return "batches" if level == "batch" else f"{level}s"


def status_table(summaries: Mapping[int, SliceSummary]) -> str:
    """One row per slice: whether the slice is done, done/total per level below it, and notes
    (running and failed counts)."""
    if not summaries:
        return "no slices yet"
    top, *levels = list(next(iter(summaries.values())).counts)
    header = ["slice", "done", *(_plural(level) for level in levels), "notes"]
    rows = [header]
    for slice_id, summary in summaries.items():
        cells = [str(slice_id), "yes" if summary.done(top) == summary.total(top) else "no"]
        notes = []
        for level in levels:
            counts = summary.counts[level]
            cells.append(f"{summary.done(level)}/{summary.total(level)}")
            for state in (Lifecycle.RUNNING, Lifecycle.FAILED):
                if counts[state]:
                    notes.append(f"{counts[state]} {_plural(level)} {state.value}")
        complete = all(summary.done(level) == summary.total(level) for level in summary.counts)
        cells.append("; ".join(notes) or ("complete" if complete else "in progress"))
        rows.append(cells)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                     for row in rows)
