import dataclasses

import pytest

from opticstream_napari.layout import Grid, GridOrder
from opticstream_napari.processing.stitch.global_solve import TileStatus
from opticstream_napari.processing.stitch.placement import Placement
from opticstream_napari.processing.stitch.template import (
    PlacementTemplate,
    TemplateError,
    template_from_placement,
)

GRID = Grid(3, 2)
H = (0.5, 90.0)
V = (89.0, -1.0)


def _placement(signal: dict[int, float], bad: int | None = None) -> Placement:
    positions = {}
    for t in range(1, GRID.tile_count + 1):
        r, c = GRID.position(t)
        positions[t] = (c * H[0] + r * V[0], c * H[1] + r * V[1])
    if bad is not None:
        positions[bad] = (positions[bad][0] + 30.0, positions[bad][1] - 30.0)
    return Placement(
        grid=GRID,
        tile_shape=(100, 100),
        overlap=(10, 10),
        nominal=dict.fromkeys(positions, (0.0, 0.0)),
        positions=positions,
        status=dict.fromkeys(positions, TileStatus.REGISTERED),
        links=(),
        signal=signal,
    )


def test_template_from_placement_uses_only_tiles_above_the_signal_threshold() -> None:
    # Tile 6 is badly placed but has no tissue: it must not disturb the lattice.
    signal = dict.fromkeys(range(1, 7), 70.0) | {6: 40.0}
    template = template_from_placement(
        _placement(signal, bad=6), "normal", signal_threshold=60.0, source="slice 1, mosaic 1"
    )
    assert template.lattice.horizontal == pytest.approx(H)
    assert template.lattice.vertical == pytest.approx(V)
    assert template.positions == template.lattice.positions(GRID)
    assert template.signal == signal
    assert (template.grid, template.tile_shape, template.acquisition) == (GRID, (100, 100), "normal")


def test_yaml_round_trip_is_exact() -> None:
    signal = {t: 60.0 + t / 3 for t in range(1, 7)}
    template = template_from_placement(_placement(signal), "tiltPos", source="slice 1")
    text = template.to_yaml()
    assert "tiltPos" in text and "snake_by_columns" in text
    again = PlacementTemplate.from_yaml(text)
    assert again.positions == template.positions
    assert again.lattice == template.lattice
    assert again.signal == {t: round(v, 3) for t, v in signal.items()}
    assert dataclasses.replace(again, signal=template.signal) == template


def test_a_template_that_does_not_fit_the_grid_is_a_clear_error() -> None:
    template = template_from_placement(_placement({}), "tilted")
    template.check_fits(Grid(3, 2), (100, 100))
    with pytest.raises(TemplateError, match=r"3-column × 2-row .* 4-column × 2-row.*refresh"):
        template.check_fits(Grid(4, 2), (100, 100))
    with pytest.raises(TemplateError, match=r"\(here\.yaml\) .* 100×100-pixel tiles, but .* 100×80-pixel"):
        template.check_fits(Grid(3, 2), (100, 80), where="here.yaml")
    with pytest.raises(TemplateError, match="row_by_row"):
        template.check_fits(Grid(3, 2, GridOrder.ROW_BY_ROW), (100, 100))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: "tiles: [unclosed", "not valid YAML"),
        (lambda t: "- a list", "mapping at the top level"),
        (lambda t: t.replace("opticstream-placement-template/1", "other/9"), "format must be"),
        (lambda t: t.replace("acquisition: normal\n", ""), "missing key 'acquisition'"),
        (lambda t: t.replace("tile: 2,", "tile: 1,"), "tile 1 is listed twice"),
        (lambda t: t.replace("tile: 6,", "tile: 7,"), "outside a grid"),
        (lambda t: t[: t.index("- {tile: 6")], "lists 5 tiles, but a 3×2 grid has 6"),
        (lambda t: t.replace("row: 0, column: 0,", "row: 1, column: 0,", 1), "grid puts it at"),
        (lambda t: t.replace("tile_shape: [100, 100]", "tile_shape: [100]"), "two numbers"),
        (lambda t: t.replace("order: snake_by_columns", "order: zigzag"), "zigzag"),
    ],
)
def test_malformed_templates_name_the_problem(edit, message) -> None:
    text = template_from_placement(_placement({}), "normal").to_yaml()
    with pytest.raises(TemplateError, match=rf"^tile_info_normal\.yaml: .*{message}"):
        PlacementTemplate.from_yaml(edit(text), where="tile_info_normal.yaml")


def test_an_acquisition_label_is_required() -> None:
    with pytest.raises(ValueError, match="acquisition label"):
        template_from_placement(_placement({}), "")
