"""Stage parameters from a scan config: the one translation from config fields to numerics."""

from __future__ import annotations

from opticstream_napari.config import PSOCTScanConfig
from opticstream_napari.processing.psoct.enface import EnfaceParams
from opticstream_napari.processing.psoct.spectral import SpectralParams


def spectral_params(config: PSOCTScanConfig) -> SpectralParams:
    p = config.processing
    return SpectralParams(
        autocorr_cut=p.autocorr_cut,
        depth=p.depth,
        window=p.spectral_window.value,
        dc_median_lines=p.dc_median_lines,
        phase_offset_deg=p.phase_offset_deg,
        flip_phase=p.flip_phase,
        flip_z=p.flip_z,
    )


def enface_params(config: PSOCTScanConfig) -> EnfaceParams:
    p = config.processing
    return EnfaceParams(
        offset=p.enface_offset,
        length=p.enface_depth,
        wavelength_um=config.acquisition.wavelength_um,
        axial_um=config.acquisition.scan_resolution_3d_um[2],
        orientation=p.ori_method.value,
        birefringence=p.biref_method.value,
    )
