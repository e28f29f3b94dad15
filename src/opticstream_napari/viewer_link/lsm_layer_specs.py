"""An LSM slice's layers: per camera, the two halves (``ch1``, ``ch2``) of its MIP mosaic, growing strip by strip.

The channel's MIP mosaic is its strips' MIP halves one after the other along the first axis (spec
4.11). Until the engine has written it, a layer shows the strip MIPs found so far at their places
(strips not yet processed are black); then the mosaic itself. Levels are built in memory from
strided reads, the finest one within :data:`LEVEL_BUDGET`: napari slices layers on the GUI thread,
and the strips' OME-Zarr volumes on disk keep the full resolution for QC.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from opticstream_napari import naming
from opticstream_napari.config import LSMScanConfig
from opticstream_napari.engine.pipelines.lsm_work import VOXEL_UM
from opticstream_napari.identity import LSMChannelId, LSMStripId
from opticstream_napari.io.mip_tiff import read_mip
from opticstream_napari.io.preview import default_window
from opticstream_napari.viewer_link.layer_specs import UNITS, LayerSpec, SliceLayers, layer_title

log = logging.getLogger(__name__)

CHANNELS = (1, 2)  # the two cameras a strip folder can name
HALVES = ("ch1", "ch2")
COLORMAPS = {"ch1": "green", "ch2": "magenta"}  # the halves image the same tissue: overlaid, additively
LEVEL_BUDGET = 64 * 2**20  # bytes of the finest level held per layer
COARSEST_EDGE = 512  # levels halve until the long side is at most this
PREVIEW = "strips"  # source of a growing mosaic: "<first strip MIP>#strips=<present>"


def lsm_role_placeholders(config: LSMScanConfig) -> list[LayerSpec]:
    """An empty 2D layer per camera and half, made when the project opens (napari takes 0.1-0.7 s each)."""
    specs = []
    for channel in CHANNELS:
        for half in HALVES:
            kwargs = _kwargs(f"{_title(channel, half)} · waiting for data", (1.0, 1.0), config, None, channel, half)
            levels = [np.zeros((2, 2), np.uint16), np.zeros((1, 1), np.uint16)]
            specs.append(LayerSpec((channel, f"mip-{half}"), 0, "", "image", levels, kwargs))
    return specs


def lsm_slice_layer_specs(config: LSMScanConfig, slice_id: int, known: dict[tuple[int, str], str]) -> SliceLayers:
    """Each camera's MIP halves on disk now: the channel mosaic once written, else its strips so far."""
    specs: list[LayerSpec] = []
    present: set[tuple[int, str]] = set()
    root = config.output_root
    for channel_number in CHANNELS:
        channel = LSMChannelId(config.project_name, slice_id, channel_number)
        strips = {s: root / naming.lsm_strip_mip_name(LSMStripId(channel.project, slice_id, channel_number, s))
                  for s in range(1, config.strips_per_slice + 1)}
        strips = {s: path for s, path in strips.items() if path.is_file()}
        for index, half in enumerate(HALVES):
            final = root / naming.lsm_channel_mip_name(channel, half)
            if final.is_file():
                source = str(final)
            elif strips:
                source = f"{strips[min(strips)]}#{PREVIEW}={','.join(map(str, sorted(strips)))}"
            else:
                continue
            key = (channel_number, f"mip-{half}")
            present.add(key)
            if known.get(key) == source:
                continue
            try:
                if final.is_file():
                    mosaic = read_mip(final)
                    step = _stride(mosaic.shape)
                    levels = _levels(mosaic.shape, [(0, np.ascontiguousarray(mosaic[::step, ::step]))], step)
                else:
                    levels, step = _strip_levels(strips, config.strips_per_slice, index)
            except ValueError as error:  # the channel's own step fails on it too, and says so in the state table
                log.warning("%s %s of slice %d is not shown: %s", channel, half, slice_id, error)
                continue
            name = f"{_title(channel_number, half)} · slice {slice_id}"
            kwargs = _kwargs(name, (VOXEL_UM[1] * step, VOXEL_UM[2] * step), config, levels[-1], channel_number, half)
            specs.append(LayerSpec(key, slice_id, source, "image", levels, kwargs))
    return SliceLayers(slice_id, specs, frozenset(present))


def _title(channel: int, half: str) -> str:
    return layer_title(f"camera {channel}", f"MIP {half}")


def _kwargs(name: str, scale: tuple[float, float], config: LSMScanConfig, coarsest: np.ndarray | None,
            channel: int, half: str) -> dict:
    """Camera 1 shown, its halves overlaid in green and magenta; camera 2 a tick away in the layer list.

    Without a configured window, the percentiles of the coarsest level's landed (non-zero) samples.
    """
    landed = None if coarsest is None else coarsest[coarsest > 0]
    window = config.output_mip_preview_window or (default_window(landed) if landed is not None else (0, 1))
    return {"name": name, "multiscale": True, "cache": False, "scale": scale, "units": UNITS,
            "axis_labels": ("y", "x"), "contrast_limits": window, "colormap": COLORMAPS[half],
            "blending": "additive", "visible": channel == CHANNELS[0]}


def _strip_levels(strips: dict[int, Path], count: int, index: int) -> tuple[list[np.ndarray], int]:
    """The growing mosaic of one half: strip ``s`` at rows ``(s - 1) · h``, every strip ``h`` rows high.

    Each strip's strided rows are read once (:data:`_BLOCKS`): a slice of a hundred strips is
    rebuilt a hundred times as they land, and would otherwise be read from disk each time.
    """
    halves = {s: np.array_split(read_mip(path), 2, axis=0)[index].shape for s, path in strips.items()}
    first = halves[min(halves)]
    for s, shape in halves.items():
        if shape != first:
            raise ValueError(f"{strips[s]}: its MIP half is {shape}, strip {min(halves)}'s is {first}")
    height = first[0]
    step = _stride((count * height, first[1]))
    blocks = []
    for s, path in strips.items():
        skip = -((s - 1) * height) % step
        if skip < height:
            blocks.append((((s - 1) * height + skip) // step, _BLOCKS.get(path, index, skip, step)))
    return _levels((count * height, first[1]), blocks, step), step


def _stride(shape: Sequence[int]) -> int:
    """The smallest power-of-two stride whose level fits :data:`LEVEL_BUDGET` (uint16)."""
    step = 1
    while np.prod([-(-n // step) for n in shape]) * 2 > LEVEL_BUDGET:
        step *= 2
    return step


def _levels(shape: Sequence[int], blocks: list[tuple[int, np.ndarray]], step: int) -> list[np.ndarray]:
    """In-memory levels of a ``shape`` mosaic from row blocks already read at ``step`` (at their first row)."""
    finest = np.zeros([-(-n // step) for n in shape], np.uint16)
    for row, block in blocks:
        finest[row : row + block.shape[0]] = block
    levels = [finest]
    while max(levels[-1].shape) > COARSEST_EDGE:
        levels.append(np.ascontiguousarray(levels[-1][::2, ::2]))
    return levels


class _StripBlocks:
    """Strided strip MIP halves already read, keyed by file state; the oldest go beyond ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._blocks: OrderedDict[tuple[str, int, int, int, int, int], np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, path: Path, index: int, skip: int, step: int) -> np.ndarray:
        stat = path.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size, index, skip, step)
        with self._lock:
            if key in self._blocks:
                self._blocks.move_to_end(key)
                return self._blocks[key]
        block = np.ascontiguousarray(np.array_split(read_mip(path), 2, axis=0)[index][skip::step, ::step])
        with self._lock:
            if key not in self._blocks:
                self._blocks[key] = block
                self._bytes += block.nbytes
            while self._bytes > self._limit and len(self._blocks) > 1:
                self._bytes -= self._blocks.popitem(last=False)[1].nbytes
        return block


_BLOCKS = _StripBlocks(4 * LEVEL_BUDGET)  # the four halves of the slice being shown
