"""Light-sheet (LSM) scan configuration: strips, compression, archive, cleanup, upload."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from opticstream_napari.config.base import ConfigModel
from opticstream_napari.config.zarr import ZarrConfig


class CleanupAction(StrEnum):
    KEEP = "keep"
    RENAME = "rename"
    DELETE = "delete"


class LSMScanConfig(ConfigModel):
    """Everything the engine needs to process one light-sheet project."""

    modality: Literal["lsm"] = Field("lsm", description="Selects the light-sheet model.")
    project_name: str = Field(
        min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-]*$",
        description="BIDS-like project identifier.",
    )
    project_base_path: Path = Field(description="Root of the project's working tree.")
    database_url: str | None = Field(
        None, description="State database; None uses SQLite at <project_base_path>/state.db."
    )
    info_file: Path | None = Field(None, description="Camera info .mat (frame count trimming).")
    strip_folder_size_threshold: float = Field(
        25.0, ge=0, description="Minimum raw strip folder size in GB; smaller strips fail."
    )
    min_strip_files: int = Field(100, ge=0, description="A strip folder needs more files than this.")
    compressed_min_zarr_gb: float = Field(1.0, ge=0, description="Smallest valid strip zarr (GB).")
    compressed_min_mip_mb: float = Field(1.0, ge=0, description="Smallest valid strip MIP (MB).")
    output_path: Path | None = Field(None, description="Output root; None uses project_base_path.")
    generate_mip: bool = Field(True, description="Write the strip MIP (TIFF) and JPEG previews.")
    output_mip_preview_window: tuple[float, float] | None = Field(
        (0.0, 1000.0), description="Grey window (min, max) of JPEG previews; None autoscale."
    )
    archive_path: Path | None = Field(None, description="Raw strip archive root; None disables.")
    distribute_archive: bool = Field(False, description="A separate worker archives strips.")
    distribute_archive_timeout: float = Field(600.0, gt=0, description="Seconds to wait for it.")
    archive_rate_limit: float = Field(500.0, gt=0, description="Archive copy limit in MB/s.")
    strip_cleanup_action: CleanupAction = Field(
        CleanupAction.RENAME, description="After processing: keep, move to processed/, or delete spools."
    )
    strips_per_slice: int = Field(100, ge=1, description="Strips per slice and channel.")
    zarr_config: ZarrConfig = Field(default_factory=ZarrConfig, description="OME-Zarr output layout.")
    dandi_instance: str = Field("linc", description="DANDI instance name or API URL.")
    dandiset_path: Path | None = Field(None, description="Local dandiset root for uploads.")
    cpu_affinity: tuple[int, int] | None = Field(
        None, description="Half-open core range [start, stop) for compression."
    )
    num_workers: int = Field(
        8, ge=1, description="Most strip blocks compressed at once; the task's share of the cores caps it too."
    )
    stitch_volume: bool = Field(False, description="Stitch the channel volume after its MIP.")
    channel_volume_zarr_size_threshold: float = Field(1.0, ge=0, description="Smallest valid channel volume (GB).")
    skip_channel_volume_zarr_validation: bool = Field(True, description="Skip the volume size check.")

    @field_validator("output_mip_preview_window")
    @classmethod
    def _window_ordered(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not value[0] < value[1]:
            raise ValueError(f"window must be (min, max) with min < max, found {value}")
        return value

    @field_validator("cpu_affinity")
    @classmethod
    def _affinity_range(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and not 0 <= value[0] < value[1]:
            raise ValueError(f"cpu_affinity must be [start, stop) with 0 <= start < stop, found {value}")
        return value

    @property
    def output_root(self) -> Path:
        return self.output_path or self.project_base_path
