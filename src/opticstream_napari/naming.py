"""Every raw and output name of the project, parsed and formatted in one place.

A name that does not match is reported with :class:`NameParseError`, never guessed.
Folder layout of a PS-OCT project::

    <project_base>/tile_info_<acq>.yaml   focus-<bucket>.nii
    <project_base>/slice-SS/processed/    per-tile NIfTI outputs
    <project_base>/slice-SS/stitched/     mosaics (.ome.zarr, .nii.gz, .jpg), masks, coordinates
    <project_base>/slice-SS/stitched/live/  live previews (.ome.zarr) of mosaics still growing
    <project_base>/slice-SS/focus_finding/  filtered_<bucket>.yaml, focus-<bucket>.nii, plane_<bucket>.png
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePath

from opticstream_napari.identity import LSMChannelId, LSMStripId, PSOCTTileId
from opticstream_napari.layout import batch_of_tile, shift_mosaic, slice_of_mosaic


class NameParseError(ValueError):
    """A file or folder name that does not follow the expected convention."""

    def __init__(self, name: str, expected: str) -> None:
        self.name = name
        self.expected = expected
        super().__init__(f"cannot parse name {name!r}: expected {expected}")

    def __reduce__(self) -> tuple[type, tuple[object, ...]]:
        return type(self), (self.name, self.expected)  # crosses to and from worker processes


def project_slug(project: str) -> str:
    """Lower-case, '_' -> '-': the one spelling used for locks, keys and channels."""
    return project.lower().replace("_", "-")


# --------------------------------------------------------------------------- LSM raw names

_LSM_STRIP_FOLDER = re.compile(r"^([A-Za-z]+)(\d+)(_C2)?(?:_(\d+))?$", re.IGNORECASE)
LSM_SPOOL_MARKER = "Spooled files.sifx"
LSM_ACQUISITION_INI = "acquisitionmetadata.ini"
LSM_INFO_FILE = "info.mat"
_SPOOL_FILE = re.compile(r"^(\d{10})spool\.dat$")
_SPOOL_DIGITS = 10


@dataclass(frozen=True, slots=True)
class LSMStripFolder:
    """What a raw strip folder name says: run (= slice), strip within the slice, camera channel."""

    prefix: str
    run: int
    strip: int
    channel: int

    def identity(self, project: str, slice_offset: int = 0) -> LSMStripId:
        return LSMStripId(project, self.run + slice_offset, self.channel, self.strip)


def parse_lsm_strip_folder(name: str) -> LSMStripFolder:
    """``Run1`` -> run 1 strip 1 channel 1; ``Run1_C2_3`` -> run 1 strip 4 channel 2."""
    match = _LSM_STRIP_FOLDER.match(PurePath(name).name)
    if not match:
        raise NameParseError(name, "<letters><run>[_C2][_<index>], e.g. Run1, Run1_4, Run1_C2_3")
    prefix, run, c2, index = match.groups()
    strip = int(index) + 1 if index is not None else 1
    return LSMStripFolder(prefix, int(run), strip, 2 if c2 else 1)


def format_lsm_strip_folder(run: int, strip: int, channel: int, prefix: str = "Run") -> str:
    if channel not in (1, 2) or run < 0 or strip < 1:
        raise ValueError(f"no strip folder for run {run}, strip {strip}, channel {channel}")
    return f"{prefix}{run}" + ("_C2" if channel == 2 else "") + (f"_{strip - 1}" if strip > 1 else "")


def spool_file_name(index: int) -> str:
    """Zyla spool files carry their 0-based index zero-padded to 10 digits, then reversed."""
    if not 0 <= index < 10**_SPOOL_DIGITS:
        raise ValueError(f"spool index must be in [0, 1e10), found {index}")
    return str(index).zfill(_SPOOL_DIGITS)[::-1] + "spool.dat"


def parse_spool_file_name(name: str) -> int:
    match = _SPOOL_FILE.match(PurePath(name).name)
    if not match:
        raise NameParseError(name, "<10 digits>spool.dat, e.g. 1000000000spool.dat")
    return int(match.group(1)[::-1])


# --------------------------------------------------------------------------- LSM outputs


def _lsm_stem(strip: LSMStripId) -> str:
    return (
        f"{strip.project}_sample-slice{strip.slice:02d}_chunk-{strip.strip:04d}"
        f"_acq-camera-{strip.channel:02d}"
    )


def lsm_strip_zarr_name(strip: LSMStripId) -> str:
    return f"{_lsm_stem(strip)}.ome.zarr"


def lsm_strip_mip_name(strip: LSMStripId) -> str:
    return f"{_lsm_stem(strip)}_proc-mip.tiff"


def lsm_strip_preview_names(strip: LSMStripId) -> tuple[str, str]:
    stem = f"{_lsm_stem(strip)}_proc-mip"
    return f"{stem}.part1.jpg", f"{stem}.part2.jpg"


def lsm_channel_mip_name(channel: LSMChannelId, half: str, ext: str = "tiff") -> str:
    """The channel MIP mosaic is split into the two camera halves, ``ch1`` and ``ch2``."""
    if half not in ("ch1", "ch2") or ext not in ("tiff", "jpg"):
        raise ValueError(f"channel MIP half must be ch1/ch2 and ext tiff/jpg, found {half}, {ext}")
    return f"{channel.slice:02d}_{channel.channel:02d}_mip_{half}.{ext}"


def lsm_channel_volume_name(channel: LSMChannelId, half: str) -> str:
    """A channel volume per camera half, as its MIP mosaic: ``…_channel-01_ch1_volume.ome.zarr``."""
    if half not in ("ch1", "ch2"):
        raise ValueError(f"channel volume half must be ch1/ch2, found {half}")
    return f"{channel.project}_slice-{channel.slice:02d}_channel-{channel.channel:02d}_{half}_volume.ome.zarr"


LSM_PROCESSED_FOLDER = "processed"


# --------------------------------------------------------------------------- PS-OCT raw names


class RawTileKind(StrEnum):
    COMPLEX = "complex"
    SPECTRAL = "spectral"
    SPECTRAL_12BIT = "spectral_12bit"
    PROCESSED = "processed"


_PSOCT_PATTERNS: tuple[tuple[RawTileKind, re.Pattern[str]], ...] = (
    (RawTileKind.COMPLEX, re.compile(r"^mosaic_(\d+)_image_(\d+)_processed(_cropped)?\.nii$", re.I)),
    (RawTileKind.SPECTRAL, re.compile(r"^mosaic_(\d+)_image_(\d+)_spectral_(\d+)\.nii$", re.I)),
    (RawTileKind.SPECTRAL_12BIT, re.compile(r"^mosaic_(\d+)_image_(\d+)_spectral_(\d+)\.raw$", re.I)),
    (RawTileKind.PROCESSED, re.compile(r"^mosaic_(\d+)_image_(\d+)_([A-Za-z0-9]+)\.nii$", re.I)),
)
TILE_OUTPUT_MODALITIES = ("aip", "mip", "ret", "ori", "biref", "surf", "dbi", "r3d", "o3d")
PSOCT_MIN_RAW_BYTES = 100 * 1024


@dataclass(frozen=True, slots=True)
class PSOCTRawTile:
    """What a raw PS-OCT tile name says: its source mosaic and 1-based image (tile) index."""

    kind: RawTileKind
    mosaic: int
    image: int
    detail: str | None = None

    def identity(
        self, project: str, mosaics_per_slice: int, grid_size_y: int, slice_offset: int = 0
    ) -> PSOCTTileId:
        mosaic = shift_mosaic(self.mosaic, slice_offset, mosaics_per_slice)
        return PSOCTTileId(
            project,
            slice_of_mosaic(mosaic, mosaics_per_slice),
            mosaic,
            batch_of_tile(self.image, grid_size_y),
            self.image,
        )


def parse_psoct_raw_tile(name: str) -> PSOCTRawTile:
    """Match the four raw tile patterns in the instrument's order of precedence."""
    base = PurePath(name).name
    for kind, pattern in _PSOCT_PATTERNS:
        match = pattern.match(base)
        if match:
            mosaic, image = int(match.group(1)), int(match.group(2))
            if mosaic < 1 or image < 1:
                raise NameParseError(name, "mosaic and image numbers >= 1")
            detail = match.group(3)
            if kind is RawTileKind.COMPLEX:
                detail = "cropped" if detail else None
            elif kind is RawTileKind.PROCESSED:
                detail = detail.lower()
                if detail not in TILE_OUTPUT_MODALITIES:
                    break
            return PSOCTRawTile(kind, mosaic, image, detail)
    raise NameParseError(
        name,
        "mosaic_<M>_image_<T>_spectral_<N>.nii|.raw, mosaic_<M>_image_<T>_processed[_cropped].nii "
        "or mosaic_<M>_image_<T>_<modality>.nii",
    )


def psoct_spectral_tile_name(mosaic: int, image: int, *, packed_12bit: bool = False) -> str:
    """The instrument numbers spectral files with the 0-based image index as the suffix."""
    ext = "raw" if packed_12bit else "nii"
    return f"mosaic_{mosaic:03d}_image_{image:04d}_spectral_{image - 1:04d}.{ext}"


def psoct_complex_tile_name(mosaic: int, image: int) -> str:
    return f"mosaic_{mosaic:03d}_image_{image:04d}_processed.nii"


_MACAQUE_FILE = re.compile(r"^processed_(\d+)\.nii$", re.I)
MACAQUE_SUBFOLDER = "spectral"


def psoct_macaque_tile_name(index: int) -> str:
    return f"processed_{index:04d}.nii"


def parse_psoct_macaque_tile(name: str, tiles_per_mosaic: int) -> PSOCTRawTile:
    """Three-mosaic (macaque) rigs number files continuously; we read them mosaic-major.

    File ``i`` (1-based) is tile ``(i-1) % n + 1`` of source mosaic ``(i-1) // n + 1`` where
    ``n`` is the number of tiles in one mosaic. The original's watcher and its test disagreed
    on this mapping; this is the one we document and test.
    """
    match = _MACAQUE_FILE.match(PurePath(name).name)
    if not match or int(match.group(1)) < 1:
        raise NameParseError(name, "processed_<NNNN>.nii with NNNN >= 1")
    mosaic, image = divmod(int(match.group(1)) - 1, tiles_per_mosaic)
    return PSOCTRawTile(RawTileKind.COMPLEX, mosaic + 1, image + 1)


# --------------------------------------------------------------------------- PS-OCT working tree

PROCESSED_FOLDER = "processed"
STITCHED_FOLDER = "stitched"
LIVE_FOLDER = "live"  # under stitched/: mosaics growing tile by tile while a mosaic is acquired
FOCUS_FOLDER = "focus_finding"  # slice-SS/focus_finding/: the QC of a focus fit (spec 4.9)
GROUND_TRUTH_FOLDER = "ground_truth"
LOG_FOLDER = "logs"
LOG_FILE = "opticstream.log"
FFTW_WISDOM_FILE = "fftw-wisdom.json"  # FFT plans shared by every process of a project (engine.plans)
CALIBRATION_FILE = "wave-pixel.mat"
DISPERSION_FILE = "dispersion.dat"


def slice_folder_name(slice_id: int) -> str:
    return f"slice-{slice_id:02d}"


def processed_tile_name(mosaic: int, image: int, modality: str, *, zarr: bool = False) -> str:
    """Per-tile output: ``mosaic_001_image_0003_aip.nii`` (``…_dBI.ome.zarr`` for a zarr volume)."""
    return f"mosaic_{mosaic:03d}_image_{image:04d}_{modality}" + (".ome.zarr" if zarr else ".nii")


def tile_configuration_name(bucket: str, *, registered: bool = False) -> str:
    return f"TileConfiguration_{bucket}" + (".registered" if registered else "") + ".txt"


def mosaic_enface_nifti_name(mosaic: int, modality: str) -> str:
    return f"mosaic_{mosaic:03d}_{modality}.nii.gz"


def mosaic_zarr_name(mosaic: int, modality: str) -> str:
    return f"mosaic_{mosaic:03d}_{modality}.ome.zarr"


def mosaic_preview_name(mosaic: int, modality: str) -> str:
    return f"mosaic_{mosaic:03d}_{modality}.jpg"


def mosaic_mask_name(mosaic: int) -> str:
    return mosaic_enface_nifti_name(mosaic, "mask")


def mosaic_tile_coords_name(mosaic: int) -> str:
    return f"mosaic_{mosaic:03d}_tile_coords.yaml"


def placement_template_name(acquisition: str) -> str:
    """Per-acquisition tile placement computed on the first slice and reused."""
    return f"tile_info_{acquisition}.yaml"


def focus_plane_name(bucket: str) -> str:
    return f"focus-{bucket}.nii"


def focus_filtered_name(bucket: str) -> str:
    """The tiles a focus fit considered, their signal, which it used, and the fitted polynomial."""
    return f"filtered_{bucket}.yaml"


def focus_plot_name(bucket: str) -> str:
    return f"plane_{bucket}.png"


# --------------------------------------------------------------------------- archive and DANDI/LINC


def archive_tile_name(project: str, slice_id: int, tile: int, acquisition: str) -> str:
    return f"{project}_sample-slice{slice_id:02d}_chunk-{tile:04d}_acq-{acquisition}_OCT.nii.gz"


def checksum_sidecar_name(archived_name: str) -> str:
    """Sidecar beside an archive; the whole name is kept (the original dropped '.gz')."""
    return f"{archived_name}.sha256"


def dandi_slice_folder(slice_id: int) -> str:
    return f"sample-slice{slice_id:02d}"


def dandi_enface_name(project: str, slice_id: int, acquisition: str, modality: str) -> str:
    return f"{project}_sample-slice{slice_id:02d}_acq-{acquisition}_proc-{modality}_OCT.nii.gz"


def dandi_volume_name(project: str, slice_id: int, acquisition: str, modality: str) -> str:
    return f"{project}_sample-slice{slice_id:02d}_acq-{acquisition}_proc-{modality}_OCT.ome.zarr"


_BIDS_ENTITY = re.compile(r"^([a-z]+)-([A-Za-z0-9]+)$")


def bids_entities(project: str) -> dict[str, str]:
    """``sub-I80_voi-slab2`` -> {'sub': 'I80', 'voi': 'slab2'}; every part must be key-value."""
    entities: dict[str, str] = {}
    for part in project.split("_"):
        match = _BIDS_ENTITY.match(part)
        if not match or match.group(1) in entities:
            raise NameParseError(project, "BIDS entities key-value joined by '_', e.g. sub-I80_voi-slab2")
        entities[match.group(1)] = match.group(2)
    return entities


def linc_raw_path(project: str, slice_id: int, acquisition: str, tile: int) -> PurePath:
    """Where LINC keeps a raw tile: rawdata/sub-X/voi-Y/sample-sliceZZ/acq-W/<name>."""
    entities = bids_entities(project)
    if "sub" not in entities:
        raise NameParseError(project, "a project name with a 'sub-' entity for LINC raw paths")
    folders = [f"{k}-{v}" for k, v in entities.items()]
    sample = dandi_slice_folder(slice_id)
    name = f"{project}_{sample}_acq-{acquisition}_chunk-{tile:04d}_OCT.nii.gz"
    return PurePath("rawdata", *folders, sample, f"acq-{acquisition}", name)
