"""Stitching: tile placement (pairwise registration, global solve, lattice, template) and blending.

Placement: :func:`place_tiles` registers neighbouring tiles on their overlaps
(:mod:`.pairwise`), solves all positions together (:mod:`.global_solve`), and
:func:`template_from_placement` fits the original's lattice (:mod:`.lattice`) into a
per-acquisition :class:`PlacementTemplate` (:mod:`.template`). Positions are ``(y, x)`` pixels.

Mosaics: :func:`blend_region` blends placed tiles region by region (:mod:`.blend`: ramp
weights, weighted circular mean for orientation); :func:`make_mask` derives the tissue mask
from the AIP mosaic (:mod:`.mask`); :func:`fit_focus_plane` and :func:`focus_crop` flatten
field curvature before volumes are blended (:mod:`.focus`).
"""

from opticstream_napari.processing.stitch.blend import (
    BlendAccumulator,
    BlendMode,
    MosaicLayout,
    blend_mode_for,
    blend_region,
    coverage,
    ramp,
)
from opticstream_napari.processing.stitch.focus import (
    FocusPlane,
    fit_focus_plane,
    focus_crop,
    tiles_above_signal,
)
from opticstream_napari.processing.stitch.global_solve import (
    GlobalSolution,
    Link,
    LinkResult,
    LinkState,
    TileStatus,
    solve_positions,
)
from opticstream_napari.processing.stitch.lattice import Lattice, fit_lattice
from opticstream_napari.processing.stitch.mask import (
    apply_mask,
    is_masked,
    make_mask,
    mask_fill_value,
)
from opticstream_napari.processing.stitch.pairwise import (
    PairShift,
    PhaseCorrelator,
    correlator_for,
    register_pair,
)
from opticstream_napari.processing.stitch.placement import (
    Placement,
    TileShapeError,
    TileSource,
    place_tiles,
)
from opticstream_napari.processing.stitch.template import (
    PlacementTemplate,
    TemplateError,
    template_from_placement,
)

__all__ = [
    "BlendAccumulator",
    "BlendMode",
    "FocusPlane",
    "GlobalSolution",
    "Lattice",
    "Link",
    "LinkResult",
    "LinkState",
    "MosaicLayout",
    "PairShift",
    "PhaseCorrelator",
    "Placement",
    "PlacementTemplate",
    "TemplateError",
    "TileShapeError",
    "TileSource",
    "TileStatus",
    "apply_mask",
    "blend_mode_for",
    "blend_region",
    "correlator_for",
    "coverage",
    "fit_focus_plane",
    "fit_lattice",
    "focus_crop",
    "is_masked",
    "make_mask",
    "mask_fill_value",
    "place_tiles",
    "ramp",
    "register_pair",
    "solve_positions",
    "template_from_placement",
    "tiles_above_signal",
]
