from pathlib import PurePath

import pytest

from opticstream_napari import naming
from opticstream_napari.identity import LSMChannelId, LSMStripId, PSOCTTileId
from opticstream_napari.naming import NameParseError, RawTileKind


@pytest.mark.parametrize(
    ("name", "run", "strip", "channel"),
    [("Run1", 1, 1, 1), ("Run1_4", 1, 5, 1), ("Run1_C2_3", 1, 4, 2), ("run12_c2", 12, 1, 2),
     ("Scan7_0", 7, 1, 1), ("/data/Run3_2", 3, 3, 1)],
)
def test_lsm_strip_folders(name: str, run: int, strip: int, channel: int) -> None:
    parsed = naming.parse_lsm_strip_folder(name)
    assert (parsed.run, parsed.strip, parsed.channel) == (run, strip, channel)
    if parsed.prefix == "Run":
        assert naming.format_lsm_strip_folder(run, strip, channel) == PurePath(name).name


@pytest.mark.parametrize("name", ["Run", "Run_1", "Run1_C3", "Run1__2", "Run1_C2_extra", "1Run", ""])
def test_lsm_strip_folder_rejections_name_the_input(name: str) -> None:
    with pytest.raises(NameParseError) as info:
        naming.parse_lsm_strip_folder(name)
    assert repr(name) in str(info.value) and "expected" in str(info.value)


def test_lsm_strip_identity_uses_run_as_slice_with_offset() -> None:
    assert naming.parse_lsm_strip_folder("Run2_C2_1").identity("p", slice_offset=3) == LSMStripId(
        "p", 5, 2, 2
    )


@pytest.mark.parametrize(
    ("index", "name"), [(0, "0000000000spool.dat"), (1, "1000000000spool.dat"), (12, "2100000000spool.dat")]
)
def test_spool_names(index: int, name: str) -> None:
    assert naming.spool_file_name(index) == name
    assert naming.parse_spool_file_name(name) == index


@pytest.mark.parametrize("name", ["000000000spool.dat", "0000000000spool.bin", "abcdefghijspool.dat"])
def test_spool_name_rejections(name: str) -> None:
    with pytest.raises(NameParseError):
        naming.parse_spool_file_name(name)


def test_lsm_output_names() -> None:
    strip = LSMStripId("sub-X", 3, 2, 7)
    assert naming.lsm_strip_zarr_name(strip) == "sub-X_sample-slice03_chunk-0007_acq-camera-02.ome.zarr"
    assert naming.lsm_strip_mip_name(strip) == "sub-X_sample-slice03_chunk-0007_acq-camera-02_proc-mip.tiff"
    assert naming.lsm_strip_preview_names(strip)[1].endswith("_proc-mip.part2.jpg")
    channel = LSMChannelId("sub-X", 3, 2)
    assert naming.lsm_channel_mip_name(channel, "ch1") == "03_02_mip_ch1.tiff"
    assert naming.lsm_channel_mip_name(channel, "ch2", "jpg") == "03_02_mip_ch2.jpg"
    assert naming.lsm_channel_volume_name(channel, "ch2") == "sub-X_slice-03_channel-02_ch2_volume.ome.zarr"
    with pytest.raises(ValueError, match="ch1/ch2"):
        naming.lsm_channel_volume_name(channel, "both")
    with pytest.raises(ValueError, match="ch1/ch2"):
        naming.lsm_channel_mip_name(channel, "ch3")


@pytest.mark.parametrize(
    ("name", "kind", "mosaic", "image", "detail"),
    [
        ("mosaic_003_image_0045_spectral_0044.nii", RawTileKind.SPECTRAL, 3, 45, "0044"),
        ("mosaic_001_image_0002_spectral_0001.raw", RawTileKind.SPECTRAL_12BIT, 1, 2, "0001"),
        ("mosaic_002_image_0010_processed.nii", RawTileKind.COMPLEX, 2, 10, None),
        ("mosaic_002_image_0010_processed_cropped.nii", RawTileKind.COMPLEX, 2, 10, "cropped"),
        ("MOSAIC_004_IMAGE_0001_AIP.nii", RawTileKind.PROCESSED, 4, 1, "aip"),
    ],
)
def test_psoct_raw_tiles(name: str, kind: RawTileKind, mosaic: int, image: int, detail: str | None) -> None:
    assert naming.parse_psoct_raw_tile(name) == naming.PSOCTRawTile(kind, mosaic, image, detail)


@pytest.mark.parametrize(
    "name",
    ["mosaic_003_image_0045_spectral.nii", "mosaic_3_image_45.nii", "mosaic_000_image_0001_aip.nii",
     "mosaic_001_image_0001_spectral_0000.nii.gz", "tile_001.nii"],
)
def test_psoct_raw_rejections(name: str) -> None:
    with pytest.raises(NameParseError, match="expected"):
        naming.parse_psoct_raw_tile(name)


def test_psoct_raw_identity_follows_the_slice_arithmetic() -> None:
    raw = naming.parse_psoct_raw_tile("mosaic_003_image_0045_spectral_0044.nii")
    assert raw.identity("p", mosaics_per_slice=2, grid_size_y=10) == PSOCTTileId("p", 2, 3, 5, 45)
    assert raw.identity("p", 2, 10, slice_offset=1) == PSOCTTileId("p", 3, 5, 5, 45)
    assert raw.identity("p", 3, 10) == PSOCTTileId("p", 1, 3, 5, 45)


def test_spectral_and_complex_names_parse_back() -> None:
    for packed in (False, True):
        name = naming.psoct_spectral_tile_name(2, 7, packed_12bit=packed)
        assert naming.parse_psoct_raw_tile(name).image == 7
    assert naming.psoct_spectral_tile_name(3, 45) == "mosaic_003_image_0045_spectral_0044.nii"
    assert naming.parse_psoct_raw_tile(naming.psoct_complex_tile_name(2, 3)).kind is RawTileKind.COMPLEX


def test_macaque_mapping_is_mosaic_major() -> None:
    assert naming.psoct_macaque_tile_name(7) == "processed_0007.nii"
    parsed = naming.parse_psoct_macaque_tile("processed_0007.nii", tiles_per_mosaic=6)
    assert (parsed.mosaic, parsed.image) == (2, 1)
    assert parsed.identity("p", 3, 3) == PSOCTTileId("p", 1, 2, 1, 1)
    with pytest.raises(NameParseError):
        naming.parse_psoct_macaque_tile("processed_0000.nii", 6)


def test_working_tree_names() -> None:
    assert naming.slice_folder_name(3) == "slice-03"
    assert naming.processed_tile_name(1, 3, "aip") == "mosaic_001_image_0003_aip.nii"
    assert naming.tile_configuration_name("normal") == "TileConfiguration_normal.txt"
    assert naming.tile_configuration_name("tilted", registered=True) == "TileConfiguration_tilted.registered.txt"
    assert naming.mosaic_enface_nifti_name(2, "ret") == "mosaic_002_ret.nii.gz"
    assert naming.mosaic_zarr_name(2, "dBI") == "mosaic_002_dBI.ome.zarr"
    assert naming.mosaic_mask_name(2) == "mosaic_002_mask.nii.gz"
    assert naming.mosaic_preview_name(2, "ori") == "mosaic_002_ori.jpg"
    assert naming.placement_template_name("tiltPos") == "tile_info_tiltPos.yaml"
    assert naming.focus_plane_name("normal") == "focus-normal.nii"


def test_archive_and_dandi_names() -> None:
    archived = naming.archive_tile_name("sub-I80_voi-slab2", 3, 45, "tilted")
    assert archived == "sub-I80_voi-slab2_sample-slice03_chunk-0045_acq-tilted_OCT.nii.gz"
    assert naming.checksum_sidecar_name(archived) == archived + ".sha256"
    assert naming.dandi_enface_name("sub-I80_voi-slab2", 3, "normal", "mask") == (
        "sub-I80_voi-slab2_sample-slice03_acq-normal_proc-mask_OCT.nii.gz"
    )
    assert naming.dandi_volume_name("sub-I80", 1, "tilted", "dBI").endswith("_proc-dBI_OCT.ome.zarr")
    assert naming.dandi_slice_folder(3) == "sample-slice03"
    assert naming.linc_raw_path("sub-I80_voi-slab2", 3, "normal", 45) == PurePath(
        "rawdata/sub-I80/voi-slab2/sample-slice03/acq-normal/"
        "sub-I80_voi-slab2_sample-slice03_acq-normal_chunk-0045_OCT.nii.gz"
    )


@pytest.mark.parametrize("project", ["I80_slab2", "sub-I80_sub-I81", "voi-slab2"])
def test_linc_paths_need_bids_entities(project: str) -> None:
    with pytest.raises(NameParseError, match=r"entit|sub-"):
        naming.linc_raw_path(project, 1, "normal", 1)


def test_project_slug() -> None:
    assert naming.project_slug("Sub-I80_voi_Slab2") == "sub-i80-voi-slab2"
