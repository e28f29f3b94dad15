"""Which layers a slice has on disk, and how each is shown: read off the GUI thread.

Nothing here touches napari; a :class:`LayerSpec` carries the data (lazy pyramids, small arrays)
and the keyword arguments for napari's ``add_*``, and the mediator applies it on the GUI thread.
En-face mosaics are 2D ``(y, x)`` layers, volume mosaics 3D ``(z, y, x)`` ones; napari shows the
2D layers in every z plane of the volumes and adds a z slider.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import yaml
import zarr

from opticstream_napari import naming
from opticstream_napari.config import LSMScanConfig, PSOCTScanConfig
from opticstream_napari.engine.pipelines.psoct_mosaic import live_path, pixel_size_um, stitched_folder
from opticstream_napari.engine.pipelines.psoct_volume import stitches_volumes
from opticstream_napari.identity import PSOCTMosaicId
from opticstream_napari.io.nifti import read_enface_nifti
from opticstream_napari.io.ome_zarr import is_complete
from opticstream_napari.layout import mosaic_role, mosaics_of_slice

log = logging.getLogger(__name__)

ScanConfigModel = LSMScanConfig | PSOCTScanConfig
LayerKey = tuple[int, str]  # (position of the mosaic in its slice, what); position 0: project-wide
UNITS = ("µm", "µm")  # (y, x); a volume's layers carry one more for z


@dataclass(frozen=True, slots=True)
class Display:
    """How one modality is shown: fixed limits, so a growing mosaic never flickers."""

    label: str
    colormap: str
    limits: tuple[float, float]
    visible: bool = False


# units: AIP, MIP and dBI in dB; RET, ORI, R3D and O3D in degrees; BIREF Δn; surface in samples
DISPLAY: dict[str, Display] = {
    "aip": Display("AIP", "gray", (40.0, 90.0), visible=True),
    "mip": Display("MIP", "gray", (40.0, 90.0)),
    "ret": Display("RET", "magma", (0.0, 30.0)),
    "ori": Display("ORI", "twilight_shifted", (-90.0, 90.0)),
    "biref": Display("BIREF", "viridis", (0.0, 1e-3)),
    "surf": Display("surface", "viridis", (0.0, 60.0)),
    "dBI": Display("dBI", "gray", (40.0, 90.0)),
    "R3D": Display("R3D", "magma", (0.0, 30.0)),
    "O3D": Display("O3D", "twilight_shifted", (-90.0, 90.0)),
}


@dataclass(frozen=True, slots=True)
class LayerSpec:
    """A layer to add, or new data for one: built off the GUI thread, applied on it.

    ``key`` is the layer's role, ``(position of the mosaic in its slice, what)``, or ``(0,
    what)`` for project-wide layers: one layer per role whatever the slice, so a long
    acquisition never piles up layers. ``source`` is the file the data came from.
    """

    key: LayerKey
    slice: int
    source: str
    kind: str
    data: Any
    kwargs: dict[str, Any]
    extent: tuple[int, ...] | None = None  # level-0 shape of a pyramid, whatever level the data starts at


@dataclass(frozen=True, slots=True)
class SliceLayers:
    """What a slice has on disk: specs for layers that are new or changed, and every role with data."""

    slice: int
    specs: list[LayerSpec]
    present: frozenset[LayerKey]


_STACKING = {"image": 0, "labels": 1, "shapes": 2}  # overlays land on top of the mosaics


def layer_title(acquisition: str, what: str) -> str:
    """A role's name, what first so it survives the layer list's truncation: ``AIP · normal``."""
    return f"{what} · {acquisition}"


def _image_spec(key: LayerKey, slice_id: int, name: str, path: Path, first_level: int) -> LayerSpec:
    """Every pyramid level from ``first_level`` down, lazily, in µm, 2D or 3D; no data is read here."""
    group = zarr.open_group(str(path), mode="r")
    multiscale = group.attrs["ome"]["multiscales"][0]
    datasets = multiscale["datasets"]
    axes = tuple(axis["name"] for axis in multiscale["axes"])
    first = min(first_level, len(datasets) - 1)
    levels = [da.from_zarr(group[d["path"]]) for d in datasets[first:]]
    transforms = {t["type"]: t for t in datasets[first]["coordinateTransformations"]}
    scale = transforms["scale"]["scale"]
    translate = transforms.get("translation", {"translation": [0.0] * len(scale)})["translation"]
    display = DISPLAY.get(key[1], Display(key[1], "gray", (0.0, 1.0)))
    kwargs = {
        "name": name, "multiscale": True, "cache": False, "scale": scale, "translate": translate,
        "units": (UNITS[0],) * len(axes), "axis_labels": axes, "contrast_limits": display.limits,
        "colormap": display.colormap, "visible": display.visible,
    }
    return LayerSpec(key, slice_id, str(path), "image", levels, kwargs, tuple(group[datasets[0]["path"]].shape))


def _mask_spec(key: LayerKey, slice_id: int, name: str, path: Path) -> LayerSpec:
    mask, pixel = read_enface_nifti(path)
    kwargs = {"name": name, "scale": pixel, "units": UNITS, "axis_labels": ("y", "x"), "opacity": 0.4,
              "visible": False}
    return LayerSpec(key, slice_id, str(path), "labels", (mask > 0).astype(np.uint8), kwargs)


def _tiles_spec(key: LayerKey, slice_id: int, name: str, path: Path) -> LayerSpec:
    """Tile footprints where the final fuse put them, numbered in acquisition order."""
    coords = yaml.safe_load(path.read_text(encoding="utf-8"))
    height, width = coords["tile_shape"]
    rectangles, numbers = [], []
    for tile in coords["tiles"]:
        y, x = (v - 0.5 for v in tile["offset"])
        rectangles.append(np.array([[y, x], [y, x + width], [y + height, x + width], [y + height, x]]))
        numbers.append(tile["tile"])
    kwargs = {
        "name": name, "shape_type": "rectangle", "scale": coords["pixel_size_um"], "units": UNITS,
        "axis_labels": ("y", "x"), "edge_color": "cyan", "face_color": "transparent", "edge_width": 0.5,
        "features": {"tile": numbers}, "visible": False, "text": {"string": "{tile}", "color": "cyan", "size": 9},
    }
    return LayerSpec(key, slice_id, str(path), "shapes", rectangles, kwargs)


def _focus_spec(config: PSOCTScanConfig, bucket: str) -> LayerSpec | None:
    path = config.project_base_path / naming.focus_plane_name(bucket)
    if not path.is_file():
        return None
    plane, pixel = read_enface_nifti(path)
    limits = (float(np.nanmin(plane)), float(np.nanmax(plane)) + 1e-6)
    kwargs = {"name": f"focus plane · {bucket}", "scale": pixel, "units": UNITS, "axis_labels": ("y", "x"),
              "colormap": "viridis", "contrast_limits": limits, "visible": False}
    return LayerSpec((0, f"focus-{bucket}"), 0, str(path), "image", plane.astype(np.float32), kwargs)


PLACEHOLDER = ""  # the source of a role's layer before any slice has data for it


def role_placeholders(config: ScanConfigModel) -> list[LayerSpec]:
    """One empty layer per role the project will show, in the kind, units and axes of its data.

    napari needs 0.1–0.7 s of GUI thread to create a layer, so the widget has every role made
    when a project's config is loaded (the mediator again at Start for any role still missing);
    while tiles land it only swaps data (tens of ms).
    """
    if not isinstance(config, PSOCTScanConfig):
        from opticstream_napari.viewer_link.lsm_layer_specs import lsm_role_placeholders  # it builds on this module

        return lsm_role_placeholders(config)
    plane = np.full((2, 2), np.nan, np.float32)
    # the data's own scale already: a scale change when the first data swaps in costs napari ~17 ms
    pixel = pixel_size_um(config)
    size_x, size_y, size_z = config.acquisition.scan_resolution_3d_um
    specs = []
    volumes = [m.value for m in config.volume_modalities] if stitches_volumes(config) else []
    for mosaic in range(1, config.mosaics_per_slice + 1):
        role = mosaic_role(mosaic, config.mosaics_per_slice)
        for modality in [m.value for m in config.enface_modalities] + volumes:
            ndim = 3 if modality in volumes else 2
            display = DISPLAY.get(modality, Display(modality, "gray", (0.0, 1.0)))
            levels = [np.full((2,) * ndim, np.nan, np.float32), np.full((1,) * ndim, np.nan, np.float32)]
            kwargs = {
                "name": f"{layer_title(role.acquisition, display.label)} · waiting for data", "multiscale": True,
                "cache": False, "units": (UNITS[0],) * ndim, "axis_labels": ("z", "y", "x")[-ndim:],
                "scale": (size_z, size_y, size_x) if ndim == 3 else pixel,
                "contrast_limits": display.limits, "colormap": display.colormap, "visible": display.visible,
            }
            specs.append(LayerSpec((role.position, modality), 0, PLACEHOLDER, "image", levels, kwargs))
        common = {"units": UNITS, "axis_labels": ("y", "x"), "visible": False, "scale": pixel}
        specs.append(LayerSpec((role.position, "mask"), 0, PLACEHOLDER, "labels", np.zeros((2, 2), np.uint8), {
            **common, "name": f"{layer_title(role.acquisition, 'mask')} · waiting for data", "opacity": 0.4}))
        specs.append(LayerSpec((role.position, "tiles"), 0, PLACEHOLDER, "shapes", [], {
            **common, "name": f"{layer_title(role.acquisition, 'tiles')} · waiting for data", "ndim": 2,
            "shape_type": "rectangle", "edge_color": "cyan", "face_color": "transparent", "edge_width": 0.5,
            "features": {"tile": np.zeros(0, int)}, "text": {"string": "{tile}", "color": "cyan", "size": 9}}))
    buckets = {mosaic_role(m, config.mosaics_per_slice).bucket for m in range(1, config.mosaics_per_slice + 1)}
    for bucket in sorted(buckets):
        specs.append(LayerSpec((0, f"focus-{bucket}"), 0, PLACEHOLDER, "image", plane, {
            "name": f"focus plane · {bucket} · waiting for data", "units": UNITS, "axis_labels": ("y", "x"),
            "scale": pixel,
            "colormap": "viridis", "contrast_limits": (0.0, 1.0), "visible": False}))
    return sorted(specs, key=lambda spec: _STACKING[spec.kind])


def mosaic_position(mosaic: PSOCTMosaicId, mosaics_per_slice: int) -> int:
    return mosaic_role(mosaic.mosaic, mosaics_per_slice).position


def _add_spec(specs: list[LayerSpec], build: Callable[..., LayerSpec], *args: Any) -> None:
    """Build one spec; a store the engine is recreating at this moment is left for the next scan."""
    try:
        specs.append(build(*args))
    except (OSError, KeyError, ValueError, yaml.YAMLError) as error:
        log.debug("%s is not readable yet: %s", args[3], error)


def slice_layer_specs(
    config: ScanConfigModel, slice_id: int, known: dict[LayerKey, str], preview_level: int = 0
) -> SliceLayers:
    """The slice's layers on disk now; specs only for those whose source differs from ``known``.

    Each en-face modality of each mosaic comes from its final store once that is complete, else
    from its live preview (loaded from ``preview_level`` down); the mask and the tile outlines
    come with the final mosaic, each volume (dBI, R3D, O3D) once its store is complete; the focus
    plane of the mosaic's bucket once the engine saved it.
    Runs off the GUI thread: it reads metadata and small files only.
    """
    if not isinstance(config, PSOCTScanConfig):
        from opticstream_napari.viewer_link.lsm_layer_specs import lsm_slice_layer_specs  # it builds on this module

        return lsm_slice_layer_specs(config, slice_id, known)
    specs: list[LayerSpec] = []
    present: set[LayerKey] = set()
    folder = stitched_folder(config, slice_id)
    for mosaic in mosaics_of_slice(slice_id, config.mosaics_per_slice):
        role = mosaic_role(mosaic, config.mosaics_per_slice)
        ident = PSOCTMosaicId(config.project_name, slice_id, mosaic)
        for modality in (m.value for m in config.enface_modalities):
            key = (role.position, modality)
            final = folder / naming.mosaic_zarr_name(mosaic, modality)
            live = live_path(config, ident, modality)
            if is_complete(final):
                path, level = final, 0
            elif (live / "zarr.json").is_file():
                path, level = live, preview_level
            else:
                continue
            present.add(key)
            if known.get(key) != str(path):
                label = DISPLAY[modality].label if modality in DISPLAY else modality
                name = f"{layer_title(role.acquisition, label)} · slice {slice_id}"
                _add_spec(specs, _image_spec, key, slice_id, name, path, level)
        for modality in (m.value for m in config.volume_modalities):
            key = (role.position, modality)
            final = folder / naming.mosaic_zarr_name(mosaic, modality)
            if is_complete(final):
                present.add(key)
                if known.get(key) != str(final):
                    name = f"{layer_title(role.acquisition, DISPLAY[modality].label)} · slice {slice_id}"
                    _add_spec(specs, _image_spec, key, slice_id, name, final, 0)
        extras = (("mask", folder / naming.mosaic_mask_name(mosaic), _mask_spec),
                  ("tiles", folder / naming.mosaic_tile_coords_name(mosaic), _tiles_spec))
        for what, path, build in extras:
            key = (role.position, what)
            if path.is_file():
                present.add(key)
                if known.get(key) != str(path):
                    name = f"{layer_title(role.acquisition, what)} · slice {slice_id}"
                    _add_spec(specs, build, key, slice_id, name, path)
    for bucket in sorted({mosaic_role(m, config.mosaics_per_slice).bucket
                          for m in mosaics_of_slice(slice_id, config.mosaics_per_slice)}):
        focus = _focus_spec(config, bucket)
        if focus is not None and known.get(focus.key) != focus.source:
            specs.append(focus)
    return SliceLayers(slice_id, sorted(specs, key=lambda spec: _STACKING[spec.kind]), frozenset(present))
