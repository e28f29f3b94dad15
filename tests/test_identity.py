import pytest

from opticstream_napari.identity import (
    LSMStripId,
    PSOCTMosaicId,
    PSOCTTileId,
    identity_from_dict,
)


def test_parents_and_round_trip() -> None:
    tile = PSOCTTileId("p", 1, 2, 3, 7)
    assert tile.parent.parent == PSOCTMosaicId("p", 1, 2)
    assert tile.parent.parent.parent.slice == 1
    assert identity_from_dict("psoct", "tile", tile.to_dict()) == tile
    strip = LSMStripId("p", 2, 1, 4)
    assert identity_from_dict("lsm", "strip", strip.to_dict()) == strip
    assert str(strip) == "lsm:p/slice=2/channel=1/strip=4"


def test_invalid_identities() -> None:
    with pytest.raises(ValueError, match="tile must be an integer >= 1"):
        PSOCTTileId("p", 1, 1, 1, 0)
    with pytest.raises(ValueError, match="project"):
        LSMStripId("", 1, 1, 1)
    with pytest.raises(ValueError, match="no identity type"):
        identity_from_dict("psoct", "strip", {})
