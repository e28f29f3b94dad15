"""PS-OCT scan configuration: the instrument grid, the reconstruction and the outputs.

Units are uniform across the package: lengths in micrometres (µm), angles in degrees,
intensities in dB, sizes in bytes unless a field name says otherwise. NIfTI files are
written in millimetres because that is the NIfTI convention; conversion happens in the writer.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from opticstream_napari.config.base import ConfigModel
from opticstream_napari.config.zarr import ZarrConfig


class TileSavingType(StrEnum):
    """What the instrument writes per tile."""

    COMPLEX = "complex"
    SPECTRAL = "spectral"
    SPECTRAL_12BIT = "spectral_12bit"
    COMPLEX_WITH_SPECTRAL = "complex_with_spectral"
    PROCESSED_WITH_SPECTRAL = "processed_with_spectral"


class EnfaceModality(StrEnum):
    AIP = "aip"
    MIP = "mip"
    RET = "ret"
    ORI = "ori"
    BIREF = "biref"
    SURF = "surf"


class VolumeModality(StrEnum):
    DBI = "dBI"
    R3D = "R3D"
    O3D = "O3D"


class OrientationMethod(StrEnum):
    WEIGHTED_CIRCULAR_MEAN = "weighted_circular_mean"
    CIRCULAR_MEAN = "circular_mean"
    MEAN = "mean"


class BirefringenceMethod(StrEnum):
    LEGACY = "legacy"
    ROBUST = "robust"


class SpectralWindow(StrEnum):
    NONE = "none"
    HANN = "hann"


class PoolType(StrEnum):
    PROCESS = "process"
    THREAD = "thread"


SURFACE_METHODS = ("gradient",)


class PSOCTAcquisitionParams(ConfigModel):
    """Geometry of the acquisition grid and of one tile."""

    grid_size_x_normal: int = Field(ge=1, description="Columns (batches) per normal mosaic.")
    grid_size_x_tilted: int = Field(ge=1, description="Columns (batches) per tilted mosaic.")
    grid_size_y: int = Field(ge=1, description="Tiles per column (one batch).")
    tile_size_x_normal: int = Field(350, ge=2, description="A-lines per tile, normal illumination.")
    tile_size_x_tilted: int = Field(200, ge=2, description="A-lines per tile, tilted illumination.")
    tile_size_y: int = Field(350, ge=2, description="B-lines per tile.")
    spectral_length: int = Field(2048, ge=64, description="Spectral samples per A-line per camera.")
    tile_overlap: float = Field(20.0, gt=0, lt=100, description="Nominal tile overlap in percent.")
    scan_resolution_3d_um: tuple[float, float, float] = Field(
        (10.0, 10.0, 2.5), description="Voxel size (x, y, z) in µm."
    )
    tile_saving_type: TileSavingType = Field(
        TileSavingType.SPECTRAL, description="What the instrument writes per tile."
    )
    wavelength_um: float = Field(1.3, gt=0, description="Centre wavelength in µm.")
    slice_thickness_um: float = Field(500.0, gt=0, description="Physical slice thickness in µm.")

    @field_validator("scan_resolution_3d_um")
    @classmethod
    def _positive_voxels(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(v <= 0 for v in value):
            raise ValueError(f"every voxel size must be > 0 µm, found {value}")
        return value

    def grid_size_x(self, bucket: str) -> int:
        """Columns of a mosaic acquired with the given config bucket (normal or tilted)."""
        return self.grid_size_x_tilted if bucket == "tilted" else self.grid_size_x_normal

    def tile_size_x(self, bucket: str) -> int:
        """A-lines per tile for the given config bucket (normal or tilted)."""
        return self.tile_size_x_tilted if bucket == "tilted" else self.tile_size_x_normal


class PSOCTProcessingParams(ConfigModel):
    """Reconstruction and en-face parameters (spec 4.1-4.4)."""

    calibration_file: Path | None = Field(
        None, description="wave-pixel.mat (mu, wave_prime); None uses <project>/wave-pixel.mat."
    )
    disp_comp_file: Path | None = Field(
        None, description="Dispersion phase (float64); None means no dispersion compensation."
    )
    autocorr_cut: int = Field(24, ge=0, description="Depth bins dropped after the FFT.")
    dc_median_lines: int | None = Field(
        None, ge=1, le=512,
        description="A-lines (evenly spaced) whose median is the DC spectrum; None uses all (exact).",
    )
    depth: int | None = Field(
        None, ge=1, description="Depth samples kept after the cut; None keeps L/2 - cut."
    )
    spectral_window: SpectralWindow = Field(
        SpectralWindow.NONE, description="Window applied to each spectrum before the FFT."
    )
    enface_offset: int = Field(0, description="En-face window start relative to the surface.")
    enface_depth: int = Field(70, ge=1, description="En-face window length minus one (inclusive).")
    ori_method: OrientationMethod = Field(
        OrientationMethod.WEIGHTED_CIRCULAR_MEAN,
        description="En-face orientation: 180°-periodic circular mean, weighted by I·sin(2δ) or not.",
    )
    ori_method_args: dict[str, float] = Field(default_factory=dict, description="Reserved for methods.")
    biref_method: BirefringenceMethod = Field(
        BirefringenceMethod.LEGACY, description="Δn fit: least squares (legacy) or Huber IRLS (robust)."
    )
    biref_method_args: dict[str, float] = Field(default_factory=dict, description="Reserved for methods.")
    save_enface_2d_as_3d: bool = Field(True, description="Write en-face maps as X×Y×1 NIfTI.")
    flip_phase: bool = Field(False, description="Negate the J1-J2 phase difference.")
    phase_offset_deg: float = Field(100.0, description="System phase offset in degrees.")
    flip_z: bool = Field(True, description="Reverse volumes along depth.")
    surface_spec: str = Field(
        "gradient",
        description="Surface: a method name ('gradient'), an integer depth, or a .nii map path.",
    )
    volume_dtype: Literal["float32", "uint16", "uint8"] = Field(
        "float32", description="On-disk type of per-tile volumes (quantised types save bandwidth)."
    )
    save_volumes: bool = Field(True, description="Write per-tile dBI/R3D/O3D volumes.")
    volume_format: Literal["nifti", "zarr"] = Field(
        "nifti", description="Per-tile volume files: NIfTI (.nii, as the original) or OME-Zarr (.ome.zarr)."
    )
    num_workers: int | None = Field(None, ge=1, description="Worker count; None uses every core.")
    pool_type: PoolType = Field(PoolType.PROCESS, description="Parallelism across tiles.")

    @field_validator("surface_spec")
    @classmethod
    def _valid_surface_spec(cls, value: str) -> str:
        spec = value.strip()
        if spec != value:
            raise ValueError(f"surface_spec has surrounding whitespace: {value!r}")
        if spec.lstrip("-").isdigit() or spec.endswith((".nii", ".nii.gz")):
            return spec
        if spec not in SURFACE_METHODS:
            raise ValueError(
                f"surface_spec must be an integer depth, a .nii path or one of "
                f"{list(SURFACE_METHODS)}, found {value!r}"
            )
        return spec


class PSOCTScanConfig(ConfigModel):
    """Everything the engine needs to process one PS-OCT project."""

    modality: Literal["psoct"] = Field("psoct", description="Selects the PS-OCT model.")
    project_name: str = Field(
        min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-]*$",
        description="BIDS-like project identifier, e.g. sub-I80_voi-slab2.",
    )
    project_base_path: Path = Field(description="Root of the working tree (slice-XX folders).")
    database_url: str | None = Field(
        None, description="State database; None uses SQLite at <project_base_path>/state.db."
    )
    mosaics_per_slice: Literal[2, 3] = Field(2, description="2 (normal, tilted) or 3 (macaque).")
    acquisition: PSOCTAcquisitionParams = Field(description="Instrument grid and tile geometry.")
    processing: PSOCTProcessingParams = Field(
        default_factory=PSOCTProcessingParams, description="Reconstruction and en-face parameters."
    )
    mask_threshold_normal: float = Field(60.0, description="AIP dB threshold, normal mosaics.")
    mask_threshold_tilted: float = Field(55.0, description="AIP dB threshold, tilted mosaics.")
    apply_mask: bool = Field(True, description="Mask ret/ori/biref/surf mosaics with the AIP mask.")
    focus_threshold_normal: float = Field(60.0, description="AIP dB for focus-fit tiles, normal.")
    focus_threshold_tilted: float = Field(55.0, description="AIP dB for focus-fit tiles, tilted.")
    dandiset_path: Path | None = Field(None, description="Local dandiset root for published files.")
    archive_path: Path | None = Field(None, description="Raw-tile archive root; None disables it.")
    dandi_instance: str = Field("linc", description="DANDI instance name or API URL.")
    enface_modalities: list[EnfaceModality] = Field(
        description="En-face maps computed per tile and stitched per mosaic.",
        default_factory=lambda: [
            EnfaceModality.RET, EnfaceModality.ORI, EnfaceModality.BIREF,
            EnfaceModality.MIP, EnfaceModality.SURF, EnfaceModality.AIP,
        ]
    )
    volume_modalities: list[VolumeModality] = Field(
        description="Volumes kept per tile and stitched in 3D.",
        default_factory=lambda: [VolumeModality.DBI, VolumeModality.R3D, VolumeModality.O3D]
    )
    stitch_3d_volumes: bool = Field(True, description="Stitch 3D volume mosaics.")
    crop_focus_plane_depth: int = Field(500, ge=1, description="Depth kept below the focus plane.")
    crop_focus_plane_offset: int = Field(30, ge=0, description="Start below the focus plane.")
    zarr_config: ZarrConfig = Field(default_factory=ZarrConfig, description="OME-Zarr output layout.")

    @model_validator(mode="after")
    def _unique_modalities(self) -> PSOCTScanConfig:
        for name in ("enface_modalities", "volume_modalities"):
            values = getattr(self, name)
            if len(set(values)) != len(values):
                raise ValueError(f"{name} lists a modality twice: {[str(v) for v in values]}")
        return self

    def mask_threshold(self, bucket: str) -> float:
        return self.mask_threshold_tilted if bucket == "tilted" else self.mask_threshold_normal

    def focus_threshold(self, bucket: str) -> float:
        return self.focus_threshold_tilted if bucket == "tilted" else self.focus_threshold_normal
