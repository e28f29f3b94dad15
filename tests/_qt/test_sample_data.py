import numpy as np


def test_psoct_sample_opens_in_napari(make_napari_viewer) -> None:
    viewer = make_napari_viewer()
    viewer.open_sample("opticstream-napari", "psoct_slice")
    names = [layer.name for layer in viewer.layers]
    assert names == ["truth AIP (dB)", "truth RET (°)", "truth ORI (°)", "truth tissue mask", "tile outlines"]
    aip = viewer.layers["truth AIP (dB)"]
    assert aip.data.shape == (340, 340)
    np.testing.assert_allclose(aip.scale, (10.0, 10.0))
    assert str(aip.units[0]) in ("micrometer", "µm")
    assert viewer.layers["truth ORI (°)"].colormap.name == "twilight_shifted"
    outlines = viewer.layers["tile outlines"]
    assert len(outlines.data) == 16
    assert sorted(outlines.features["tile"]) == list(range(1, 17))
    mask = viewer.layers["truth tissue mask"].data
    assert 0.2 < mask.mean() < 0.9


def test_lsm_sample_opens_in_napari(make_napari_viewer) -> None:
    viewer = make_napari_viewer()
    viewer.open_sample("opticstream-napari", "lsm_strip")
    volume, mip = viewer.layers
    assert volume.data.shape == (64, 128, 202)
    np.testing.assert_array_equal(mip.data, volume.data.max(axis=0))
    assert volume.data.dtype == np.uint16 and volume.data.max() > volume.data.min()
