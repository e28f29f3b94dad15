import pytest

from opticstream_napari.io.placement_template import (
    load_placement_template,
    placement_template_for,
    placement_template_path,
    save_placement_template,
)
from opticstream_napari.layout import Grid
from opticstream_napari.naming import placement_template_name
from opticstream_napari.processing.stitch.lattice import Lattice
from opticstream_napari.processing.stitch.template import PlacementTemplate, TemplateError

GRID = Grid(2, 3)


def _template(acquisition: str = "normal", step: float = 90.0) -> PlacementTemplate:
    lattice = Lattice((0.0, step), (step, 0.0), 3, 4)
    return PlacementTemplate(
        acquisition=acquisition,
        grid=GRID,
        tile_shape=(100, 100),
        lattice=lattice,
        positions=lattice.positions(GRID),
        signal=dict.fromkeys(range(1, 7), 65.0),
        source="slice 1, mosaic 1",
    )


def test_saved_under_the_project_base_with_the_naming_rule(tmp_path) -> None:
    path = save_placement_template(tmp_path, _template("tilted"))
    assert path == tmp_path / placement_template_name("tilted")
    assert path == placement_template_path(tmp_path, "tilted")
    assert load_placement_template(tmp_path, "tilted", grid=GRID, tile_shape=(100, 100)) == (
        _template("tilted"))
    assert [p.name for p in tmp_path.iterdir()] == [path.name], "no temporary left behind"


def test_made_once_on_the_first_slice_then_reused_and_refreshable(tmp_path) -> None:
    made = []

    def make(step: float) -> PlacementTemplate:
        made.append(step)
        return _template(step=step)

    first = placement_template_for(tmp_path, "normal", lambda: make(90.0), grid=GRID,
                                   tile_shape=(100, 100))
    reused = placement_template_for(tmp_path, "normal", lambda: make(95.0), grid=GRID,
                                    tile_shape=(100, 100))
    assert made == [90.0] and reused == first
    refreshed = placement_template_for(tmp_path, "normal", lambda: make(95.0), grid=GRID,
                                       tile_shape=(100, 100), refresh=True)
    assert made == [90.0, 95.0] and refreshed.lattice.horizontal == (0.0, 95.0)
    assert load_placement_template(tmp_path, "normal") == refreshed


def test_a_stored_template_that_does_not_fit_is_an_error_naming_the_file(tmp_path) -> None:
    save_placement_template(tmp_path, _template())
    path = placement_template_path(tmp_path, "normal")
    with pytest.raises(TemplateError, match=rf"{path}.*3-column × 2-row.*refresh"):
        placement_template_for(tmp_path, "normal", _template, grid=Grid(3, 2),
                               tile_shape=(100, 100))
    with pytest.raises(TemplateError, match="refresh"):
        load_placement_template(tmp_path, "normal", grid=GRID, tile_shape=(100, 120))


def test_wrong_contents_and_missing_files(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        load_placement_template(tmp_path, "normal")
    placement_template_path(tmp_path, "normal").write_text(_template("tilted").to_yaml())
    with pytest.raises(TemplateError, match="holds the template of 'tilted', not 'normal'"):
        load_placement_template(tmp_path, "normal")
    placement_template_path(tmp_path, "normal").write_text("grid: [")
    with pytest.raises(TemplateError, match=r"tile_info_normal\.yaml: not valid YAML"):
        load_placement_template(tmp_path, "normal")
    with pytest.raises(TemplateError, match="made one for 'tilted'"):
        placement_template_for(tmp_path, "normal", lambda: _template("tilted"), grid=GRID,
                               tile_shape=(100, 100), refresh=True)
