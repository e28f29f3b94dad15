"""Per-acquisition placement template: the lattice found on the first slice, reused after.

Every slice of one acquisition label (normal, tilted, tiltPos, tiltNeg) is scanned on the same
grid, but later slices may have too little tissue to register, so the original fits the
lattice once on the first slice and places all later mosaics with it (spec 4.6 steps 2-4).

This module holds the model and its YAML text; reading and writing the file under the
project's base folder is :mod:`opticstream_napari.io.placement_template`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import yaml

from opticstream_napari.layout import Grid, GridOrder, HorizontalStart, VerticalStart
from opticstream_napari.processing.stitch.global_solve import TileStatus
from opticstream_napari.processing.stitch.lattice import Lattice, fit_lattice
from opticstream_napari.processing.stitch.placement import Placement

TEMPLATE_FORMAT = "opticstream-placement-template/1"


class TemplateError(ValueError):
    """A placement template that cannot be read, or that does not fit the mosaic at hand."""


@dataclass(frozen=True)
class PlacementTemplate:
    """Lattice positions ``(y, x)`` of every tile of a grid, and where they came from.

    ``signal``: each tile's mean on the slice the template was made from (the original's
    ``avg_signal``); ``source``: free text such as ``"slice 1, mosaic 1"``.
    """

    acquisition: str
    grid: Grid
    tile_shape: tuple[int, int]
    lattice: Lattice
    positions: dict[int, tuple[float, float]]
    signal: dict[int, float]
    source: str = ""

    def check_fits(self, grid: Grid, tile_shape: Sequence[int], where: str = "") -> None:
        """Raise :class:`TemplateError` unless this template was made for this grid and shape."""
        shape = (int(tile_shape[0]), int(tile_shape[1]))
        if grid == self.grid and shape == self.tile_shape:
            return
        origin = f" ({where})" if where else ""
        raise TemplateError(
            f"the placement template for {self.acquisition!r}{origin} was made for "
            f"{_describe(self.grid, self.tile_shape)}, but this mosaic is "
            f"{_describe(grid, shape)}; refresh the template"
        )

    def to_yaml(self) -> str:
        tiles = []
        for tile in range(1, self.grid.tile_count + 1):
            row, col = self.grid.position(tile)
            y, x = self.positions[tile]
            entry: dict[str, Any] = {"tile": tile, "row": row, "column": col, "y": y, "x": x}
            if tile in self.signal:
                entry["avg_signal"] = round(float(self.signal[tile]), 3)
            tiles.append(entry)
        data = {
            "format": TEMPLATE_FORMAT,
            "acquisition": self.acquisition,
            "source": self.source,
            "grid": {
                "columns": self.grid.columns,
                "rows": self.grid.rows,
                "order": self.grid.order.value,
                "horizontal": self.grid.horizontal.value,
                "vertical": self.grid.vertical.value,
            },
            "tile_shape": list(self.tile_shape),
            "lattice": {
                "horizontal": list(self.lattice.horizontal),
                "vertical": list(self.lattice.vertical),
                "horizontal_pairs": self.lattice.horizontal_pairs,
                "vertical_pairs": self.lattice.vertical_pairs,
            },
            "tiles": tiles,
        }
        return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)

    @classmethod
    def from_yaml(cls, text: str, where: str = "placement template") -> PlacementTemplate:
        """Parse :meth:`to_yaml` output; any problem is a :class:`TemplateError` naming ``where``."""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise TemplateError(f"{where}: not valid YAML: {error}") from error
        try:
            return _from_dict(data)
        except KeyError as error:
            raise TemplateError(f"{where}: missing key {error.args[0]!r}") from error
        except (TypeError, ValueError) as error:
            raise TemplateError(f"{where}: {error}") from error


def template_from_placement(
    placement: Placement,
    acquisition: str,
    *,
    signal_threshold: float | None = None,
    source: str = "",
) -> PlacementTemplate:
    """Fit the lattice to a placement (reliable = registered, and mean ≥ ``signal_threshold``).

    The threshold is the mask threshold of the acquisition's bucket (AIP dB), as in the original.
    """
    if not acquisition:
        raise ValueError("a placement template needs an acquisition label")
    reliable = [
        t for t in placement.tiles_with(TileStatus.REGISTERED)
        if signal_threshold is None or placement.signal.get(t, -np.inf) >= signal_threshold
    ]
    lattice = fit_lattice(placement.positions, placement.grid, reliable, placement.nominal_step)
    return PlacementTemplate(
        acquisition=acquisition,
        grid=placement.grid,
        tile_shape=placement.tile_shape,
        lattice=lattice,
        positions=lattice.positions(placement.grid),
        signal=dict(placement.signal),
        source=source,
    )


def _describe(grid: Grid, shape: tuple[int, int]) -> str:
    return (
        f"a {grid.columns}-column × {grid.rows}-row {grid.order.value} grid "
        f"({grid.horizontal.value}, {grid.vertical.value}) of {shape[0]}×{shape[1]}-pixel tiles"
    )


def _pair(value: object, name: str, kind: type) -> tuple[Any, Any]:
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
        raise ValueError(f"{name} must be a list of two numbers, found {value!r}")
    return kind(value[0]), kind(value[1])


def _from_dict(data: object) -> PlacementTemplate:
    if not isinstance(data, Mapping):
        raise ValueError("expected a mapping at the top level")
    if data.get("format") != TEMPLATE_FORMAT:
        raise ValueError(f"format must be {TEMPLATE_FORMAT!r}, found {data.get('format')!r}")
    g = data["grid"]
    grid = Grid(
        int(g["columns"]), int(g["rows"]), GridOrder(g["order"]),
        HorizontalStart(g["horizontal"]), VerticalStart(g["vertical"]),
    )
    lat = data["lattice"]
    lattice = Lattice(
        horizontal=_pair(lat["horizontal"], "lattice.horizontal", float),
        vertical=_pair(lat["vertical"], "lattice.vertical", float),
        horizontal_pairs=int(lat["horizontal_pairs"]),
        vertical_pairs=int(lat["vertical_pairs"]),
    )
    positions: dict[int, tuple[float, float]] = {}
    signal: dict[int, float] = {}
    for entry in data["tiles"]:
        tile = int(entry["tile"])
        if tile in positions:
            raise ValueError(f"tile {tile} is listed twice")
        if (int(entry["row"]), int(entry["column"])) != grid.position(tile):
            raise ValueError(
                f"tile {tile} is at row {entry['row']}, column {entry['column']}, but the "
                f"grid puts it at {grid.position(tile)}"
            )
        positions[tile] = (float(entry["y"]), float(entry["x"]))
        if "avg_signal" in entry:
            signal[tile] = float(entry["avg_signal"])
    if set(positions) != set(range(1, grid.tile_count + 1)):
        raise ValueError(
            f"lists {len(positions)} tiles, but a {grid.columns}×{grid.rows} grid has "
            f"{grid.tile_count}"
        )
    return PlacementTemplate(
        acquisition=str(data["acquisition"]),
        grid=grid,
        tile_shape=_pair(data["tile_shape"], "tile_shape", int),
        lattice=lattice,
        positions=positions,
        signal=signal,
        source=str(data.get("source", "")),
    )
