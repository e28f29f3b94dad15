"""The QC record of a focus fit, in ``slice-SS/focus_finding/`` as the original kept it (spec 4.9).

Three files per illumination bucket, each written atomically: ``filtered_<bucket>.yaml`` (every
tile with an AIP, its mean signal, whether it passed the threshold, and the fitted polynomial),
``focus-<bucket>.nii`` (the plane of this fit; the project-level copy is the one later slices
reuse) and ``plane_<bucket>.png`` (the plane in grey, 0 samples black to its deepest white).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from opticstream_napari import naming
from opticstream_napari.io.atomic import atomic_write_text
from opticstream_napari.io.nifti import save_focus_plane
from opticstream_napari.io.preview import write_preview
from opticstream_napari.processing.stitch import FocusPlane


def write_focus_qc(
    folder: Path,
    bucket: str,
    fit: FocusPlane,
    signal_db: Mapping[int, float],
    threshold_db: float,
    *,
    mosaic: int,
    pixel_size_um: Sequence[float],
) -> list[Path]:
    """Write the three QC files of the fit of ``bucket`` made on ``mosaic``; returns their paths.

    ``signal_db`` is each tile's mean AIP; tiles at or above ``threshold_db`` were fitted.
    """
    plane = fit.plane()
    record = {
        "bucket": bucket,
        "mosaic": mosaic,
        "threshold_db": float(threshold_db),
        "tiles": [
            {"tile": int(tile), "mean_aip_db": round(float(mean), 3), "used": bool(mean >= threshold_db)}
            for tile, mean in sorted(signal_db.items())
        ],
        "fit": {
            "degree": fit.degree,
            "coordinates": "tile-local y and x, each scaled to [-1, 1] across the tile",
            "terms": [{"y_power": p, "x_power": q, "coefficient": c} for p, q, c in fit.terms()],
            "mean_surface_samples": float(fit.constant),
            "overlap_samples": fit.samples,
            "outliers_dropped": fit.outliers,
        },
        "plane_samples": {"min": 0.0, "max": float(plane.max())},
    }
    yaml_path = atomic_write_text(folder / naming.focus_filtered_name(bucket), yaml.safe_dump(record, sort_keys=False))
    nifti_path = save_focus_plane(folder, bucket, plane, pixel_size_um)
    plot_path = write_preview(folder / naming.focus_plot_name(bucket), plane, "focus",
                              window=(0.0, max(float(plane.max()), 1e-6)))
    return [yaml_path, nifti_path, plot_path]
