import pytest

from opticstream_napari.io.tile_configuration import (
    TileConfigurationError,
    TileEntry,
    entries_from_positions,
    format_tile_configuration,
    parse_tile_configuration,
    positions_from_entries,
    read_tile_configuration,
    tile_configuration_path,
    write_tile_configuration,
)
from opticstream_napari.naming import processed_tile_name, tile_configuration_name

FIJI_OUTPUT = """# Define the number of dimensions we are working on
dim = 2

# Define the image coordinates
mosaic_001_image_0001_aip.nii; ; (0.0, 0.0)
mosaic_001_image_0002_aip.nii; ; (1.2345678901234567, 279.75)
mosaic_001_image_0003_aip.nii; ; (-3.5E-1, 559.0)
"""


def test_reads_what_fiji_writes() -> None:
    entries = parse_tile_configuration(FIJI_OUTPUT)
    assert entries == [
        TileEntry("mosaic_001_image_0001_aip.nii", 0.0, 0.0),
        TileEntry("mosaic_001_image_0002_aip.nii", 1.2345678901234567, 279.75),
        TileEntry("mosaic_001_image_0003_aip.nii", -0.35, 559.0),
    ]


def test_format_and_parse_round_trip_exactly() -> None:
    entries = [TileEntry("a tile.tif", 0.1 + 0.2, -1e-7), TileEntry("b.tif", 3.0, 4.5, series=2)]
    text = format_tile_configuration(entries)
    assert text.startswith("# Define the number of dimensions we are working on\ndim = 2\n")
    assert "b.tif; 2; (3.0, 4.5)\n" in text
    assert parse_tile_configuration(text) == entries


def test_ideal_and_registered_files_round_trip(tmp_path) -> None:
    names = {t: processed_tile_name(1, t, "aip") for t in (1, 2, 3)}
    ideal = {1: (0.0, 0.0), 2: (280.0, 0.0), 3: (560.0, 0.0)}
    registered = {1: (0.0, 0.0), 2: (279.613, 1.25), 3: (559.5, -0.75)}
    for positions, flag in ((ideal, False), (registered, True)):
        path = tile_configuration_path(tmp_path, "normal", registered=flag)
        assert path.name == tile_configuration_name("normal", registered=flag)
        write_tile_configuration(path, entries_from_positions(names, positions))
        assert positions_from_entries(read_tile_configuration(path), names) == positions
    line = (tmp_path / "TileConfiguration_normal.registered.txt").read_text().splitlines()[-1]
    assert line == "mosaic_001_image_0003_aip.nii; ; (-0.75, 559.5)", "Fiji's (x, y) order"


def test_comments_blank_lines_spacing_and_crlf_are_tolerated() -> None:
    text = "\r\n".join([
        "  # a comment", "", "DIM=2", "# Define the image coordinates",
        "tile 1.tif;;( 1 , 2 )", "", "   tile_2.tif ; 3 ; (+4.5,-.5)   ", "# trailing",
    ])
    assert parse_tile_configuration(text) == [
        TileEntry("tile 1.tif", 1.0, 2.0),
        TileEntry("tile_2.tif", 4.5, -0.5, series=3),
    ]


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("tile.tif; (1.0, 2.0)", "expected 'name; series; \\(x, y\\)'"),
        ("tile.tif; ; (1.0, 2.0, 3.0)", "coordinates must read .* two numbers"),
        ("tile.tif; ; 1.0, 2.0", "coordinates must read .* two numbers"),
        ("tile.tif; ; (x, 2.0)", "coordinates must read .* two numbers"),
        (" ; ; (1.0, 2.0)", "empty file name"),
        ("tile.tif; first; (1.0, 2.0)", "series must be empty or a whole number"),
        ("a.tif; ; (0.0, 0.0)", "tile 'a.tif' is listed twice"),
        ("dim = 2", "a second 'dim' line"),
    ],
)
def test_malformed_lines_name_the_file_and_line(tmp_path, line, why) -> None:
    path = tmp_path / "TileConfiguration_normal.txt"
    path.write_text(f"dim = 2\n\n# tiles\na.tif; ; (0.0, 0.0)\n{line}\n")
    with pytest.raises(TileConfigurationError, match=rf"^{path}, line 5: {why}"):
        read_tile_configuration(path)


def test_the_dimension_line_is_required_and_must_be_two() -> None:
    with pytest.raises(TileConfigurationError, match="line 1: expected 'dim = 2' before"):
        parse_tile_configuration("a.tif; ; (0, 0)\ndim = 2\n")
    with pytest.raises(TileConfigurationError, match=r"line 2: only 2D .* dim = 3"):
        parse_tile_configuration("# 3D\ndim = 3\na.tif; ; (0, 0, 0)\n")
    with pytest.raises(TileConfigurationError, match=r"^cfg\.txt: no 'dim = 2' line"):
        parse_tile_configuration("# empty\n", source="cfg.txt")


def test_position_helpers_report_missing_tiles() -> None:
    with pytest.raises(ValueError, match=r"no file name for tiles \[2\]"):
        entries_from_positions({1: "a.tif"}, {1: (0.0, 0.0), 2: (1.0, 1.0)})
    entries = [TileEntry("a.tif", 1.0, 2.0)]
    with pytest.raises(TileConfigurationError, match=r"cfg: no line for b\.tif"):
        positions_from_entries(entries, {1: "a.tif", 2: "b.tif"}, source="cfg")
