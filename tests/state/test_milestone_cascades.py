"""Milestone flags of spec 1.2/1.3: every reset clears exactly its dependants, transitively."""

from __future__ import annotations

import pytest

from opticstream_napari.identity import (
    IDENTITY_TYPES,
    Identity,
    LSMChannelId,
    LSMSliceId,
    LSMStripId,
    PSOCTBatchId,
    PSOCTMosaicId,
    PSOCTSliceId,
    PSOCTTileId,
)
from opticstream_napari.state.milestones import milestone_flags, reset_closure
from opticstream_napari.state.service import StateService

CLEARS = {
    ("lsm", "strip", "compressed"): {"compressed", "uploaded"},
    ("lsm", "strip", "archived"): {"archived"},
    ("lsm", "strip", "uploaded"): {"uploaded"},
    ("lsm", "channel", "mip_stitched"): {"mip_stitched", "volume_stitched", "volume_uploaded"},
    ("lsm", "channel", "volume_stitched"): {"volume_stitched", "volume_uploaded"},
    ("lsm", "channel", "volume_uploaded"): {"volume_uploaded"},
    ("psoct", "batch", "complexed"): {"complexed", "volume_processed", "enface_processed"},
    ("psoct", "batch", "volume_processed"): {"volume_processed"},
    ("psoct", "batch", "enface_processed"): {"enface_processed"},
    ("psoct", "batch", "archived"): {"archived", "uploaded"},
    ("psoct", "batch", "uploaded"): {"uploaded"},
    ("psoct", "mosaic", "enface_stitched"): {"enface_stitched", "enface_uploaded"},
    ("psoct", "mosaic", "volume_stitched"): {"volume_stitched", "volume_uploaded"},
    ("psoct", "mosaic", "enface_uploaded"): {"enface_uploaded"},
    ("psoct", "mosaic", "volume_uploaded"): {"volume_uploaded"},
    ("psoct", "slice", "registered"): {"registered", "uploaded"},
    ("psoct", "slice", "uploaded"): {"uploaded"},
}
NODES: dict[tuple[str, str], Identity] = {
    ("lsm", "strip"): LSMStripId("q", 1, 1, 1),
    ("lsm", "channel"): LSMChannelId("q", 1, 1),
    ("psoct", "batch"): PSOCTBatchId("p", 1, 1, 1),
    ("psoct", "mosaic"): PSOCTMosaicId("p", 1, 1),
    ("psoct", "slice"): PSOCTSliceId("p", 1),
}


def test_the_table_covers_every_flag_of_every_level() -> None:
    declared = {(m, lv, f) for (m, lv) in IDENTITY_TYPES for f in milestone_flags(m, lv)}
    assert declared == set(CLEARS)
    assert milestone_flags("psoct", "tile") == () and milestone_flags("lsm", "slice") == ()


@pytest.mark.parametrize(("modality", "level", "flag"), sorted(CLEARS))
def test_reset_closure(modality: str, level: str, flag: str) -> None:
    closure = reset_closure(modality, level, flag)
    assert closure[0] == flag
    assert set(closure) == CLEARS[(modality, level, flag)]


def test_unknown_flags_are_errors() -> None:
    with pytest.raises(ValueError, match="no milestone 'stitched'"):
        reset_closure("psoct", "batch", "stitched")


def test_every_cascade_on_stored_nodes(state: StateService) -> None:
    for (modality, level, flag), cleared in sorted(CLEARS.items()):
        ident = NODES[(modality, level)]
        with state.update(ident) as node:
            for f in milestone_flags(modality, level):
                node.set_flag(f)
        with state.update(ident) as node:
            assert set(node.reset_flag(flag)) == cleared
        view = state.peek(ident)
        assert view is not None
        assert {f for f, v in view.flags.items() if not v} == cleared
        reset = state.events()[-1]
        assert reset.name == f"linc.opticstream.{modality}.{level}.reset"
        assert set(reset.payload["flags"]) == cleared


def test_setting_false_resets_and_setting_twice_announces_once(state: StateService) -> None:
    strip = LSMStripId("q", 1, 1, 1)
    with state.update(strip) as node:
        node.set_flag("compressed")
        node.set_flag("compressed")
        node.set_flag("uploaded")
    names = [e.name for e in state.events()]
    assert names.count("linc.opticstream.lsm.strip.compressed") == 1
    with state.update(strip) as node:
        node.set_flag("compressed", False)
        assert not node.flag("uploaded")
    with state.update(strip) as node:
        assert node.reset_flag("compressed") == ()
    assert state.events()[-1].name == "linc.opticstream.lsm.strip.reset"


def test_milestone_events_carry_extras(state: StateService) -> None:
    channel = LSMChannelId("q", 1, 2)
    with state.update(channel) as node:
        node.set_flag("mip_stitched", extra={"mip_stitched_path": "/x/mip.tiff", "mip_count": 2})
    event = state.events()[-1]
    assert event.name == "linc.opticstream.lsm.channel.mip_stitched"
    assert event.payload["mip_count"] == 2 and event.ident == channel


@pytest.mark.parametrize("ident", [PSOCTTileId("p", 1, 1, 1, 1), LSMSliceId("q", 1)])
def test_levels_without_milestones_reject_flags(state: StateService, ident: Identity) -> None:
    with pytest.raises(ValueError, match="known: none"), state.update(ident) as node:
        node.set_flag("compressed")
