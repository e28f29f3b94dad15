"""Scan configuration models and their YAML files; the one place configs are validated."""

from opticstream_napari.config.files import (
    ConfigError,
    ScanConfig,
    config_to_yaml,
    load_config,
    parse_config,
    save_config,
)
from opticstream_napari.config.lsm import CleanupAction, LSMScanConfig
from opticstream_napari.config.psoct import (
    BirefringenceMethod,
    EnfaceModality,
    OrientationMethod,
    PSOCTAcquisitionParams,
    PSOCTProcessingParams,
    PSOCTScanConfig,
    SpectralWindow,
    TileSavingType,
    VolumeModality,
)
from opticstream_napari.config.zarr import Codec, ZarrConfig

__all__ = [
    "BirefringenceMethod",
    "CleanupAction",
    "Codec",
    "ConfigError",
    "EnfaceModality",
    "LSMScanConfig",
    "OrientationMethod",
    "PSOCTAcquisitionParams",
    "PSOCTProcessingParams",
    "PSOCTScanConfig",
    "ScanConfig",
    "SpectralWindow",
    "TileSavingType",
    "VolumeModality",
    "ZarrConfig",
    "config_to_yaml",
    "load_config",
    "parse_config",
    "save_config",
]
