"""How OME-Zarr outputs are laid out on disk: chunking, sharding, compression, pyramid depth."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, model_validator

from opticstream_napari.config.base import ConfigModel


class Codec(StrEnum):
    ZSTD = "zstd"
    LZ4 = "lz4"
    NONE = "none"


class ZarrConfig(ConfigModel):
    """Layout of every OME-Zarr 0.5 (zarr v3) array we write.

    The original's ``ome_zarr_version`` key was silently ignored; there is no such knob here:
    outputs are always OME-Zarr 0.5 on zarr v3.
    """

    chunk: int = Field(128, ge=16, le=4096, description="Edge of a cubic chunk in voxels.")
    shard: int | None = Field(
        1024,
        ge=16,
        description="Edge of a cubic shard in voxels (a multiple of chunk); None writes unsharded.",
    )
    codec: Codec = Field(Codec.ZSTD, description="Blosc inner codec; 'none' stores raw bytes.")
    clevel: int = Field(5, ge=0, le=9, description="Compression level (zstd 9 is ~50x slower).")
    levels: int | None = Field(
        None,
        ge=1,
        le=16,
        description="Number of pyramid levels; None continues until a level fits one chunk.",
    )

    @model_validator(mode="after")
    def _shard_is_multiple_of_chunk(self) -> ZarrConfig:
        if self.shard is not None and self.shard % self.chunk:
            raise ValueError(
                f"shard ({self.shard}) must be a multiple of chunk ({self.chunk}) or null"
            )
        return self
