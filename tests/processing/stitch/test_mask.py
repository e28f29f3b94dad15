"""AIP mask: matches a synthetic tissue with a dark hole; applied per modality."""

from __future__ import annotations

import numpy as np
import pytest

from opticstream_napari.processing.stitch.mask import (
    apply_mask,
    is_masked,
    make_mask,
    mask_fill_value,
)


def _tissue(shape: tuple[int, int] = (240, 300), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """AIP-like dB map: a bright ellipse with a dark vessel inside, dust outside, a NaN corner."""
    rng = np.random.default_rng(seed)
    y, x = np.indices(shape)
    truth = ((y - 120) / 90.0) ** 2 + ((x - 150) / 120.0) ** 2 < 1.0
    hole = ((y - 110) / 20.0) ** 2 + ((x - 160) / 30.0) ** 2 < 1.0
    aip = np.where(truth, 75.0, 45.0) + rng.normal(0, 6.0, shape)
    aip[hole] = 45.0 + rng.normal(0, 6.0, hole.sum())
    aip[20:24, 20:24] = 80.0
    aip[:15, -15:] = np.nan
    return aip.astype(np.float32), truth


def test_mask_matches_tissue_with_its_hole_filled() -> None:
    aip, truth = _tissue()
    mask = make_mask(aip, threshold=60.0)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 255}
    inside = mask > 0
    iou = (inside & truth).sum() / (inside | truth).sum()
    assert iou >= 0.98
    assert not inside[20:24, 20:24].any()
    assert inside[110, 160]


def test_background_touching_the_border_is_not_a_hole() -> None:
    aip = np.full((100, 120), 40.0, np.float32)
    aip[40:60, :] = 70.0
    mask = make_mask(aip, threshold=60.0) > 0
    assert mask[50].all()
    assert not mask[:30].any() and not mask[70:].any()


def test_no_tissue_gives_an_empty_mask() -> None:
    assert not make_mask(np.full((30, 30), 10.0, np.float32), 60.0).any()


def test_apply_mask_per_modality_broadcasts_over_depth() -> None:
    mask = np.zeros((4, 5), np.uint8)
    mask[1:3, 1:4] = 255
    ret = np.ones((4, 5), np.float32)
    masked = apply_mask(ret, mask, mask_fill_value("ret"))
    assert np.isnan(masked[0]).all() and (masked[1:3, 1:4] == 1).all()
    surf = np.full((4, 5), 7.0, np.float32)
    assert (apply_mask(surf, mask, mask_fill_value("surf"))[0] == 0).all()
    volume = np.ones((3, 4, 5), np.float32)
    assert np.isnan(apply_mask(volume, mask)[:, 0]).all()
    with pytest.raises(TypeError):
        apply_mask(np.ones((4, 5), np.uint16), mask)
    with pytest.raises(ValueError, match="does not match"):
        apply_mask(np.ones((5, 5), np.float32), mask)


def test_which_modalities_are_masked() -> None:
    assert is_masked("ret") and is_masked("O3D") and is_masked("surf")
    assert not is_masked("aip") and not is_masked("mip")
    assert not is_masked("ret", apply_mask=False)
