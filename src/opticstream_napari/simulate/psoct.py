"""Simulated PS-OCT acquisition: raw tiles written as the instrument does, with the ground truth.

Each slice has ``mosaics_per_slice`` mosaics (normal and tilted illumination, spec 1.3); each
mosaic is a snake-by-columns, up-and-right grid (``layout.Grid``) whose columns are batches.
Tiles are cut from one continuous sample (:mod:`.psoct_physics`) at jittered, sub-pixel stage
positions, with a tile-local field curvature shared by every tile of a config bucket. The raw
format follows ``acquisition.tile_saving_type``: spectral ``.nii``, packed 12-bit ``.raw``,
complex ``_processed.nii``, or complex and spectral together.

Ground truth goes to ``<raw>/ground_truth/`` (a subfolder, so watchers of ``<raw>`` ignore it)::

    manifest.json            run parameters, units, and the files of every mosaic
    positions.json           nominal and true tile positions (px) per mosaic
    field_curvature.json     P(x, y) per bucket (depth samples, tile-local pixels)
    slice-SS/TileConfiguration_<acq>.txt, .registered.txt     Fiji style, ideal and true
    slice-SS/mosaic_MMM_truth-<map>.npy        canvases (X, Y) in the mosaic's nominal frame
    slice-SS/mosaic_MMM_tiles-<map>.npy        per-tile maps (tiles, A-lines, B-lines)

Positions are in pixels of the mosaic frame whose origin is the nominal position of the
top-left tile (row 0, column 0); x follows A-lines, y follows B-lines. Canvas pixel (i, j) is
frame position (i, j). Canvas ``surface`` is the continuous global topography (depth samples,
no field curvature); per-tile ``surface`` is the 0-based index of the first tissue voxel,
curvature included, i.e. what surface finding should return.

Spectral tiles carry one duplicated A-line column per tile (see ``psoct_physics.MedianGuard``):
the per-tile truth records what that column really holds. The truth assumes the reconstruction
runs with ``flip_phase=False`` and no spectral window, as the instrument's data call for.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from opticstream_napari import naming
from opticstream_napari.config import (
    PSOCTAcquisitionParams,
    PSOCTProcessingParams,
    PSOCTScanConfig,
    TileSavingType,
)
from opticstream_napari.io.atomic import atomic_path, atomic_write_text
from opticstream_napari.io.psoct_raw import (
    TileGeometry,
    complex_nifti_bytes,
    full_depth,
    spectral_nifti_bytes,
    spectral_raw12_bytes,
    write_calibration,
    write_dispersion,
)
from opticstream_napari.layout import Grid, GridOrder, HorizontalStart, VerticalStart, mosaic_role, mosaics_of_slice
from opticstream_napari.simulate.live import INSTANT, Pace, StopSignal, write_progressively
from opticstream_napari.simulate.psoct_physics import (
    FieldCurvature,
    ForwardModel,
    MedianGuard,
    PSOCTSample,
    SpectralSynthesizer,
    default_calibration,
    quadratic_dispersion,
)

PresetSize = Literal["tiny", "demo", "large"]
TILT_DEG = {"normal": 0.0, "tilted": -15.0, "tiltPos": 15.0, "tiltNeg": -15.0}
SURFACE_DEPTH = 16.0
CURVATURE_SPAN = 6.0
DEFAULT_NOISE_COUNTS = 0.1
CANVAS_MAPS = ("surface", "aip", "mip", "ret", "ori", "biref", "mask")
TILE_MAPS = ("surface", "aip", "mip", "ret", "ori", "biref", "tissue")
_SPECTRAL_TYPES = (TileSavingType.SPECTRAL, TileSavingType.SPECTRAL_12BIT, TileSavingType.COMPLEX_WITH_SPECTRAL)
_COMPLEX_TYPES = (TileSavingType.COMPLEX, TileSavingType.COMPLEX_WITH_SPECTRAL)
_SIMULATED_TYPES = (*_SPECTRAL_TYPES, TileSavingType.COMPLEX)
_FIJI_HEADER = (
    "# Define the number of dimensions we are working on\ndim = 2\n\n# Define the image coordinates\n"
)


@dataclass(frozen=True, slots=True)
class _Preset:
    alines_normal: int
    alines_tilted: int
    blines: int
    columns_normal: int
    columns_tilted: int
    rows: int
    spectral_length: int


_PRESETS: dict[str, _Preset] = {
    "tiny": _Preset(16, 12, 12, 2, 3, 3, 512),
    "demo": _Preset(100, 70, 100, 4, 5, 4, 512),
    "large": _Preset(350, 200, 350, 2, 3, 2, 2048),
}


def psoct_preset(
    base: Path,
    size: PresetSize = "tiny",
    tile_saving_type: TileSavingType = TileSavingType.SPECTRAL,
) -> PSOCTScanConfig:
    """A scan config for a simulated project rooted at ``base``.

    tiny: unit tests (16/12 × 12 A-lines, 2/3 × 3 tiles, L = 512, well under a second);
    demo: a viewer-friendly run (100/70 × 100, 4/5 × 4 tiles, L = 512);
    large: benchmark tiles of about 1 GB (350/200 × 350, 2/3 × 2 tiles, L = 2048; about a
    minute per tile on 2 cores).
    The volume mosaics keep at most the depth a simulated tile has below the focus-plane offset.
    """
    if size not in _PRESETS:
        raise ValueError(f"preset size must be one of {sorted(_PRESETS)}, found {size!r}")
    p = _PRESETS[size]
    config = PSOCTScanConfig(
        project_name=f"sub-sim_voi-{size}",
        project_base_path=base,
        acquisition=PSOCTAcquisitionParams(
            grid_size_x_normal=p.columns_normal,
            grid_size_x_tilted=p.columns_tilted,
            grid_size_y=p.rows,
            tile_size_x_normal=p.alines_normal,
            tile_size_x_tilted=p.alines_tilted,
            tile_size_y=p.blines,
            spectral_length=p.spectral_length,
            tile_saving_type=tile_saving_type,
        ),
        processing=PSOCTProcessingParams(disp_comp_file=base / naming.DISPERSION_FILE),
    )
    below_offset = full_depth(p.spectral_length, config.processing.autocorr_cut) - config.crop_focus_plane_offset
    config.crop_focus_plane_depth = min(config.crop_focus_plane_depth, below_offset - int(np.ceil(CURVATURE_SPAN)))
    return config


# --------------------------------------------------------------------------- acquisition plan


@dataclass(frozen=True, slots=True)
class TilePlacement:
    """Where one tile sits in its mosaic frame (px): as commanded and as it really was."""

    image: int
    row: int
    column: int
    nominal: tuple[float, float]
    true: tuple[float, float]

    def to_dict(self) -> dict[str, Any]:
        return {"image": self.image, "row": self.row, "column": self.column,
                "nominal": list(self.nominal), "true": list(self.true)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TilePlacement:
        return cls(data["image"], data["row"], data["column"], tuple(data["nominal"]), tuple(data["true"]))


@dataclass(frozen=True, slots=True)
class MosaicPlan:
    """One mosaic of the acquisition: its role, tile geometry, grid and tile placements."""

    slice_id: int
    mosaic: int
    acquisition: str
    bucket: str
    tilt_deg: float
    tile_size: tuple[int, int]
    grid: Grid
    origin_um: tuple[float, float]
    pixel_um: tuple[float, float]
    tiles: tuple[TilePlacement, ...]

    @property
    def canvas_shape(self) -> tuple[int, int]:
        """``max(nominal) + tile size`` per axis, as the mosaic blender sizes its canvas."""
        xs = max(t.nominal[0] for t in self.tiles)
        ys = max(t.nominal[1] for t in self.tiles)
        return int(xs) + self.tile_size[0], int(ys) + self.tile_size[1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "slice": self.slice_id, "mosaic": self.mosaic, "acquisition": self.acquisition,
            "bucket": self.bucket, "tilt_deg": self.tilt_deg, "tile_size": list(self.tile_size),
            "grid": {"columns": self.grid.columns, "rows": self.grid.rows, "order": self.grid.order.value,
                     "horizontal": self.grid.horizontal.value, "vertical": self.grid.vertical.value},
            "origin_um": list(self.origin_um), "pixel_um": list(self.pixel_um),
            "canvas_shape": list(self.canvas_shape), "tiles": [t.to_dict() for t in self.tiles],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MosaicPlan:
        g = data["grid"]
        grid = Grid(g["columns"], g["rows"], GridOrder(g["order"]),
                    HorizontalStart(g["horizontal"]), VerticalStart(g["vertical"]))
        return cls(
            data["slice"], data["mosaic"], data["acquisition"], data["bucket"], data["tilt_deg"],
            tuple(data["tile_size"]), grid, tuple(data["origin_um"]), tuple(data["pixel_um"]),
            tuple(TilePlacement.from_dict(t) for t in data["tiles"]),
        )


def plan_psoct_acquisition(
    config: PSOCTScanConfig, slices: int, seed: int, jitter_px: float
) -> list[MosaicPlan]:
    """Every mosaic of ``slices`` slices, centred on the sample, tiles jittered by ±``jitter_px``."""
    if slices < 1 or jitter_px < 0:
        raise ValueError(f"need slices >= 1 and jitter_px >= 0, found {slices} and {jitter_px}")
    acq = config.acquisition
    pixel_um = acq.scan_resolution_3d_um[0], acq.scan_resolution_3d_um[1]
    plans = []
    for slice_id in range(1, slices + 1):
        for mosaic in mosaics_of_slice(slice_id, config.mosaics_per_slice):
            role = mosaic_role(mosaic, config.mosaics_per_slice)
            size = acq.tile_size_x(role.bucket), acq.tile_size_y
            grid = Grid(acq.grid_size_x(role.bucket), acq.grid_size_y)
            step = tuple(n * (1 - acq.tile_overlap / 100) for n in size)
            extent = _extent(grid, size, step)
            rng = np.random.default_rng([seed, mosaic, 0x717])
            tiles = []
            for image in range(1, grid.tile_count + 1):
                row, column = grid.position(image)
                nominal = (column * step[0], row * step[1])
                jitter = rng.uniform(-jitter_px, jitter_px, 2)
                true = (nominal[0] + float(jitter[0]), nominal[1] + float(jitter[1]))
                tiles.append(TilePlacement(image, row, column, nominal, true))
            origin = (-extent[0] / 2 * pixel_um[0], -extent[1] / 2 * pixel_um[1])
            plans.append(MosaicPlan(slice_id, mosaic, role.acquisition, role.bucket,
                                    TILT_DEG[role.acquisition], size, grid, origin, pixel_um, tuple(tiles)))
    return plans


def _extent(grid: Grid, size: tuple[int, int], step: tuple[float, ...]) -> tuple[float, float]:
    return (grid.columns - 1) * step[0] + size[0], (grid.rows - 1) * step[1] + size[1]


# --------------------------------------------------------------------------- simulation context


@dataclass(frozen=True, slots=True)
class _Simulation:
    """Everything fixed for one run: sample, instrument models, curvature per bucket."""

    config: PSOCTScanConfig
    seed: int
    sample: PSOCTSample
    model: ForwardModel
    truth_model: ForwardModel
    synthesizer: SpectralSynthesizer | None
    curvature: dict[str, FieldCurvature]
    noise_counts: float

    @property
    def writes_spectral(self) -> bool:
        return self.config.acquisition.tile_saving_type in _SPECTRAL_TYPES

    @property
    def writes_complex(self) -> bool:
        return self.config.acquisition.tile_saving_type in _COMPLEX_TYPES

    def geometry(self, plan: MosaicPlan) -> TileGeometry:
        return TileGeometry(plan.tile_size[0], plan.tile_size[1],
                            self.config.acquisition.spectral_length, self.truth_model.depth)


def _build_simulation(
    config: PSOCTScanConfig, seed: int, dispersion: np.ndarray, noise_counts: float
) -> _Simulation:
    acq, proc = config.acquisition, config.processing
    full = full_depth(acq.spectral_length, proc.autocorr_cut)
    kept = min(full, proc.depth or full)
    needed = int(2.2 * (SURFACE_DEPTH + CURVATURE_SPAN + 4 + proc.enface_offset + proc.enface_depth))
    if full < needed:
        raise ValueError(
            f"spectral length {acq.spectral_length} leaves {full} depth samples after the cut; the "
            f"simulated sample needs at least {needed} so that it stays in the low half of the FFT band"
        )
    model = ForwardModel(full, acq.wavelength_um, acq.scan_resolution_3d_um[2], proc.phase_offset_deg,
                         proc.enface_offset, proc.enface_depth)
    synthesizer = None
    if acq.tile_saving_type is not TileSavingType.COMPLEX:
        synthesizer = SpectralSynthesizer(default_calibration(acq.spectral_length), proc.autocorr_cut,
                                          dispersion, noise_counts=noise_counts)
    buckets = sorted({mosaic_role(m, config.mosaics_per_slice).bucket
                      for m in range(1, config.mosaics_per_slice + 1)})
    curvature = {
        bucket: FieldCurvature.random(np.random.default_rng([seed, 0xC0, index]),
                                      acq.tile_size_x(bucket), acq.tile_size_y, CURVATURE_SPAN)
        for index, bucket in enumerate(buckets)
    }
    return _Simulation(config, seed, _sample(config, seed), model, replace(model, depth=kept), synthesizer,
                       curvature, noise_counts)


def _sample(config: PSOCTScanConfig, seed: int) -> PSOCTSample:
    """The tissue sized to the normal mosaic: a blob a little off-centre with background around."""
    acq = config.acquisition
    size = acq.tile_size_x_normal, acq.tile_size_y
    step = tuple(n * (1 - acq.tile_overlap / 100) for n in size)
    extent = _extent(Grid(acq.grid_size_x_normal, acq.grid_size_y), size, step)
    pixel = acq.scan_resolution_3d_um
    radius = 0.38 * min(extent[0] * pixel[0], extent[1] * pixel[1])
    centre = (-0.06 * extent[0] * pixel[0], 0.04 * extent[1] * pixel[1])
    return PSOCTSample(seed, centre, radius, max(pixel[0], pixel[1]),
                       surface_depth=SURFACE_DEPTH, slice_thickness_um=acq.slice_thickness_um)


# --------------------------------------------------------------------------- tiles


@dataclass(frozen=True, slots=True)
class _TileGrid:
    """Where the A-lines (x) and B-lines (y) of a tile sample the sample, and the surface offset."""

    x_um: np.ndarray
    y_um: np.ndarray
    surface_offset: np.ndarray
    blank_column: int | None


def _tile_grid(sim: _Simulation, plan: MosaicPlan, tile: TilePlacement) -> _TileGrid:
    width, height = plan.tile_size
    columns = np.arange(width, dtype=np.float64)
    blank = None
    if sim.writes_spectral:
        guard = MedianGuard.for_alines(width)
        if guard.source is None:
            blank = guard.target
        else:
            columns[guard.target] = columns[guard.source]
    rows = np.arange(height, dtype=np.float64)
    x = plan.origin_um[0] + (tile.true[0] + columns) * plan.pixel_um[0]
    y = plan.origin_um[1] + (tile.true[1] + rows) * plan.pixel_um[1]
    return _TileGrid(x, y, sim.curvature[plan.bucket](columns[:, None], rows[None, :]), blank)


def _tile_truth(sim: _Simulation, plan: MosaicPlan, tile: TilePlacement) -> dict[str, np.ndarray]:
    grid = _tile_grid(sim, plan, tile)
    props = sim.sample.properties(grid.x_um, grid.y_um, plan.slice_id, plan.tilt_deg)
    maps = {k: v.astype(np.float32) for k, v in
            sim.truth_model.enface(props, props.surface + grid.surface_offset).as_dict().items()}
    if grid.blank_column is not None:
        for value in maps.values():
            value[grid.blank_column] = np.nan
    return maps


def _tile_images(sim: _Simulation, plan: MosaicPlan, tile: TilePlacement) -> dict[str, np.ndarray]:
    """The raw file images of one tile, keyed by file name."""
    acq = sim.config.acquisition
    geometry = sim.geometry(plan)
    grid = _tile_grid(sim, plan, tile)
    props = sim.sample.properties(grid.x_um, grid.y_um, plan.slice_id, plan.tilt_deg)
    surface = props.surface + grid.surface_offset
    rng = np.random.default_rng([sim.seed, plan.mosaic, tile.image, 0x71E])
    spectral = np.empty(geometry.spectral_shape, np.uint16) if sim.writes_spectral else None
    complex_shape = (geometry.alines, geometry.blines, geometry.depth)
    j1_out = np.empty(complex_shape, np.complex64) if sim.writes_complex else None
    j2_out = np.empty(complex_shape, np.complex64) if sim.writes_complex else None
    chunk = max(1, (1 << 23) // (geometry.alines * acq.spectral_length))
    # Complex tiles get the noise that camera noise plus 12-bit rounding leave after the FFT.
    sigma = np.sqrt(sim.noise_counts**2 + 1 / 12) * np.sqrt(acq.spectral_length / 2)
    for start in range(0, geometry.blines, chunk):
        block = np.s_[:, start : start + chunk]
        j1, j2 = sim.model.jones(props[block], surface[block], rng)
        if spectral is not None:
            spectral[start : start + chunk] = sim.synthesizer.encode(j1, j2, rng)
        if j1_out is not None:
            for out, jones in ((j1_out, j1), (j2_out, j2)):
                noise = rng.standard_normal((*jones.shape[:-1], geometry.depth, 2)) * sigma
                out[block] = jones[..., : geometry.depth] + (noise[..., 0] + 1j * noise[..., 1])
    images = []
    if spectral is not None:
        packed = acq.tile_saving_type is TileSavingType.SPECTRAL_12BIT
        images.append(spectral_raw12_bytes(spectral) if packed else spectral_nifti_bytes(spectral, plan.pixel_um))
    if j1_out is not None:
        images.append(complex_nifti_bytes(j1_out, j2_out, acq.scan_resolution_3d_um))
    return dict(zip(raw_tile_names(sim.config, plan.mosaic, tile.image), images, strict=True))


def raw_tile_names(config: PSOCTScanConfig, mosaic: int, image: int) -> list[str]:
    """The raw file names the simulator writes for one tile, in writing order."""
    kind = config.acquisition.tile_saving_type
    names = []
    if kind in _SPECTRAL_TYPES:
        packed = kind is TileSavingType.SPECTRAL_12BIT
        names.append(naming.psoct_spectral_tile_name(mosaic, image, packed_12bit=packed))
    if kind in _COMPLEX_TYPES:
        names.append(naming.psoct_complex_tile_name(mosaic, image))
    return names


# --------------------------------------------------------------------------- ground truth


@dataclass(frozen=True, slots=True, eq=False)
class PSOCTGroundTruth:
    """What a simulated acquisition really was; files under ``folder`` (see module docstring)."""

    folder: Path
    manifest: dict[str, Any]
    mosaics: tuple[MosaicPlan, ...]
    curvature: dict[str, FieldCurvature]

    def mosaic(self, mosaic: int) -> MosaicPlan:
        for plan in self.mosaics:
            if plan.mosaic == mosaic:
                return plan
        raise KeyError(f"mosaic {mosaic} is not part of this simulation")

    def canvas(self, mosaic: int, name: str) -> np.ndarray:
        """A truth canvas ``(X, Y)``: one of :data:`CANVAS_MAPS`."""
        return np.load(self.folder / self._entry(mosaic)["canvases"][name])

    def tile_maps(self, mosaic: int, name: str) -> np.ndarray:
        """Per-tile truth ``(tiles, A-lines, B-lines)`` ordered by image: one of :data:`TILE_MAPS`."""
        return np.load(self.folder / self._entry(mosaic)["tiles"][name])

    def _entry(self, mosaic: int) -> dict[str, Any]:
        for entry in self.manifest["mosaics"]:
            if entry["mosaic"] == mosaic:
                return entry
        raise KeyError(f"mosaic {mosaic} is not part of this simulation")


def load_psoct_ground_truth(folder: Path) -> PSOCTGroundTruth:
    """Read the ground truth written by :func:`simulate_psoct` (``<raw>/ground_truth``)."""
    folder = Path(folder)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    positions = json.loads((folder / "positions.json").read_text(encoding="utf-8"))
    curvature = json.loads((folder / "field_curvature.json").read_text(encoding="utf-8"))
    return PSOCTGroundTruth(
        folder,
        manifest,
        tuple(MosaicPlan.from_dict(m) for m in positions["mosaics"]),
        {bucket: FieldCurvature(**c) for bucket, c in curvature["buckets"].items()},
    )


def _tile_configuration(plan: MosaicPlan, registered: bool) -> str:
    lines = []
    for tile in plan.tiles:
        x, y = tile.true if registered else tile.nominal
        lines.append(f"{naming.processed_tile_name(plan.mosaic, tile.image, 'aip')}; ; ({x:.6f}, {y:.6f})")
    return _FIJI_HEADER + "\n".join(lines) + "\n"


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array)


def _canvas_truth(sim: _Simulation, plan: MosaicPlan) -> dict[str, np.ndarray]:
    width, height = plan.canvas_shape
    props = sim.sample.properties(plan.origin_um[0] + np.arange(width) * plan.pixel_um[0],
                                  plan.origin_um[1] + np.arange(height) * plan.pixel_um[1],
                                  plan.slice_id, plan.tilt_deg)
    maps = sim.truth_model.enface(props, props.surface).as_dict()
    canvases = {name: maps[name].astype(np.float32) for name in ("aip", "mip", "ret", "ori", "biref")}
    canvases["surface"] = props.surface.astype(np.float32)
    canvases["mask"] = (props.tissue >= 0.5).astype(np.uint8)
    return canvases


def truth_canvases(
    config: PSOCTScanConfig, slice_id: int = 1, seed: int = 0, jitter_px: float = 1.0
) -> list[tuple[MosaicPlan, dict[str, np.ndarray]]]:
    """The true en-face canvases (X, Y) of one slice's mosaics, without writing any tile."""
    sim = _build_simulation(config, seed, np.zeros(config.acquisition.spectral_length), DEFAULT_NOISE_COUNTS)
    plans = [plan for plan in plan_psoct_acquisition(config, slice_id, seed, jitter_px) if plan.slice_id == slice_id]
    return [(plan, _canvas_truth(sim, plan)) for plan in plans]


def _write_mosaic_truth(sim: _Simulation, plan: MosaicPlan, folder: Path) -> dict[str, Any]:
    sub = naming.slice_folder_name(plan.slice_id)
    entry: dict[str, Any] = {**{k: plan.to_dict()[k] for k in ("slice", "mosaic", "acquisition", "bucket")},
                             "canvas_shape": list(plan.canvas_shape), "canvases": {}, "tiles": {},
                             "raw_files": [n for t in plan.tiles
                                           for n in raw_tile_names(sim.config, plan.mosaic, t.image)]}
    for name, canvas in _canvas_truth(sim, plan).items():
        entry["canvases"][name] = f"{sub}/mosaic_{plan.mosaic:03d}_truth-{name}.npy"
        _save_npy(folder / entry["canvases"][name], canvas)
    per_tile = [_tile_truth(sim, plan, tile) for tile in plan.tiles]
    for name in TILE_MAPS:
        entry["tiles"][name] = f"{sub}/mosaic_{plan.mosaic:03d}_tiles-{name}.npy"
        _save_npy(folder / entry["tiles"][name], np.stack([maps[name] for maps in per_tile]))
    for registered in (False, True):
        name = naming.tile_configuration_name(plan.acquisition, registered=registered)
        entry["registered" if registered else "ideal"] = f"{sub}/{name}"
        atomic_write_text(folder / sub / name, _tile_configuration(plan, registered))
    return entry


def _write_ground_truth(
    sim: _Simulation, plans: list[MosaicPlan], folder: Path, *, slices: int, jitter_px: float,
    dispersion_edge_radians: float,
) -> None:
    config = sim.config
    entries = [_write_mosaic_truth(sim, plan, folder) for plan in plans]
    atomic_write_text(folder / "positions.json", _json({"units": "px", "mosaics": [p.to_dict() for p in plans]}))
    atomic_write_text(folder / "field_curvature.json", _json({
        "units": "depth samples", "coordinates": "tile-local pixels, x = A-line, y = B-line",
        "form": "a*x + b*y + c + d*x^2 + e*y^2 + f*x*y",
        "buckets": {bucket: c.to_dict() for bucket, c in sim.curvature.items()},
    }))
    manifest = {
        "project": config.project_name, "seed": sim.seed, "slices": slices, "jitter_px": jitter_px,
        "tile_saving_type": config.acquisition.tile_saving_type.value,
        "spectral_length": config.acquisition.spectral_length, "depth": sim.truth_model.depth,
        "phase_offset_deg": config.processing.phase_offset_deg,
        "dispersion_edge_radians": dispersion_edge_radians, "noise_counts": sim.noise_counts,
        "scale_factor": 1.0,
        "units": {"positions": "px", "surface": "depth samples (0-based index per tile)",
                  "aip": "dB", "mip": "dB", "ret": "degrees", "ori": "degrees in [-90, 90)",
                  "biref": "delta n (dimensionless)", "mask": "0/1", "tissue": "0..1"},
        "sample": {"centre_um": list(sim.sample.centre_um), "radius_um": sim.sample.radius_um,
                   "surface_depth": sim.sample.surface_depth, "fibre_deg": sim.sample.fibre_deg},
        "mosaics": entries,
    }
    atomic_write_text(folder / "manifest.json", _json(manifest))


def _json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=1) + "\n"


# --------------------------------------------------------------------------- the acquisition


def _write_assets(config: PSOCTScanConfig, dispersion: np.ndarray) -> None:
    base = config.project_base_path
    proc = config.processing
    calibration = default_calibration(config.acquisition.spectral_length)
    write_calibration(proc.calibration_file or base / naming.CALIBRATION_FILE, calibration.mu, calibration.wave_prime)
    write_dispersion(proc.disp_comp_file or base / naming.DISPERSION_FILE, dispersion)


def _emit(path: Path, image: np.ndarray, pace: Pace, stop: StopSignal | None) -> bool:
    """Live: grow the file in place at the pace; otherwise appear atomically."""
    if pace.is_live:
        return write_progressively(path, image, pace, stop)
    with atomic_path(path) as tmp:
        image.tofile(tmp)
    return True


def iter_simulate_psoct(
    config: PSOCTScanConfig,
    raw_folder: Path,
    *,
    slices: int = 1,
    seed: int = 0,
    jitter_px: float = 1.0,
    pace: Pace = INSTANT,
    stop: StopSignal | None = None,
    dispersion_edge_radians: float = 0.0,
    noise_counts: float = DEFAULT_NOISE_COUNTS,
) -> Iterator[Path]:
    """Write the assets and ground truth, then every raw tile; yield each once it is complete.

    ``dispersion_edge_radians`` adds a quadratic dispersion that the written dispersion file
    compensates (it needs ``processing.disp_comp_file``). ``stop`` ends the run between files
    or inside a live write; a file cut short is not yielded.
    """
    kind = config.acquisition.tile_saving_type
    if kind not in _SIMULATED_TYPES:
        raise ValueError(f"cannot simulate tile_saving_type {kind.value!r}; "
                         f"supported: {[t.value for t in _SIMULATED_TYPES]}")
    if dispersion_edge_radians and config.processing.disp_comp_file is None:
        raise ValueError("dispersion was requested but processing.disp_comp_file is None, "
                         "so the reconstruction would not compensate it")
    raw_folder = Path(raw_folder)
    dispersion = quadratic_dispersion(config.acquisition.spectral_length, dispersion_edge_radians)
    sim = _build_simulation(config, seed, dispersion, noise_counts)
    plans = plan_psoct_acquisition(config, slices, seed, jitter_px)
    _write_assets(config, dispersion)
    _write_ground_truth(sim, plans, raw_folder / naming.GROUND_TRUTH_FOLDER, slices=slices,
                        jitter_px=jitter_px, dispersion_edge_radians=dispersion_edge_radians)
    for plan in plans:
        for tile in plan.tiles:
            if stop is not None and stop.is_set():
                return
            for name, image in _tile_images(sim, plan, tile).items():
                if not _emit(raw_folder / name, image, pace, stop):
                    return
                yield raw_folder / name


def simulate_psoct(
    config: PSOCTScanConfig,
    raw_folder: Path,
    *,
    slices: int = 1,
    seed: int = 0,
    jitter_px: float = 1.0,
    pace: Pace = INSTANT,
    stop: StopSignal | None = None,
    dispersion_edge_radians: float = 0.0,
    noise_counts: float = DEFAULT_NOISE_COUNTS,
) -> PSOCTGroundTruth:
    """Run :func:`iter_simulate_psoct` to the end and return the ground truth it wrote."""
    for _ in iter_simulate_psoct(
        config, raw_folder, slices=slices, seed=seed, jitter_px=jitter_px, pace=pace, stop=stop,
        dispersion_edge_radians=dispersion_edge_radians, noise_counts=noise_counts,
    ):
        pass
    return load_psoct_ground_truth(Path(raw_folder) / naming.GROUND_TRUTH_FOLDER)
