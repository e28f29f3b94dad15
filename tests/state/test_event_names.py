"""Canonical event names (spec 6.1) and the payload envelope with its override rule (spec 6.2)."""

from __future__ import annotations

import pytest

from opticstream_napari.identity import (
    IDENTITY_TYPES,
    LSMChannelId,
    LSMStripId,
    PSOCTBatchId,
    PSOCTMosaicId,
    PSOCTSliceId,
    PSOCTTileId,
)
from opticstream_napari.state import events
from opticstream_napari.state.events import (
    Event,
    all_event_names,
    envelope,
    event_name,
    ident_from_payload,
    milestone_event_name,
    parse_event_name,
    resource,
)
from opticstream_napari.state.lifecycle import Lifecycle
from opticstream_napari.state.milestones import milestone_flags

SPEC_6_1 = {
    "psoct": {
        "batch": ["ready", "complexed", "processed", "archived", "uploaded"],
        "mosaic": ["ready", "volume_stitched", "volume_uploaded", "enface_uploaded"],
        "slice": ["ready", "registered"],
    },
    "lsm": {
        "strip": ["ready", "processed", "compressed", "uploaded", "archived"],
        "channel": ["ready", "mip_stitched", "volume_stitched", "volume_uploaded"],
    },
}


def test_every_name_of_spec_6_1_exists() -> None:
    names = all_event_names()
    for modality, levels in SPEC_6_1.items():
        for level, states in levels.items():
            for state in states:
                assert f"linc.opticstream.{modality}.{level}.{state}" in names


def test_enface_stitched_is_its_own_event() -> None:
    assert events.PSOCT_MOSAIC_ENFACE_STITCHED == "linc.opticstream.psoct.mosaic.enface_stitched"
    with pytest.raises(ValueError, match=r"no event psoct\.mosaic\.uploaded"):
        event_name("psoct", "mosaic", "uploaded")


def test_constants_spell_the_canonical_pattern() -> None:
    assert events.PSOCT_BATCH_READY == "linc.opticstream.psoct.batch.ready"
    assert events.LSM_CHANNEL_MIP_STITCHED == "linc.opticstream.lsm.channel.mip_stitched"
    assert events.LSM_STRIP_COMPRESSED == "linc.opticstream.lsm.strip.compressed"


@pytest.mark.parametrize(("modality", "level"), sorted(IDENTITY_TYPES))
def test_every_level_has_lifecycle_and_bookkeeping_events(modality: str, level: str) -> None:
    for state in [*(s.value for s in Lifecycle), "reset", "removed", "milestone_failed"]:
        assert event_name(modality, level, state).endswith(f".{modality}.{level}.{state}")


@pytest.mark.parametrize(("modality", "level"), sorted(IDENTITY_TYPES))
def test_every_milestone_announces_a_known_event(modality: str, level: str) -> None:
    for flag in milestone_flags(modality, level):
        assert milestone_event_name(modality, level, flag) in all_event_names()


def test_enface_processed_is_announced_as_batch_processed() -> None:
    assert milestone_event_name("psoct", "batch", "enface_processed") == events.PSOCT_BATCH_PROCESSED


@pytest.mark.parametrize(
    ("modality", "level", "state"),
    [("psoct", "strip", "ready"), ("oct", "batch", "ready"), ("lsm", "strip", "stitched")],
)
def test_unknown_names_are_rejected(modality: str, level: str, state: str) -> None:
    with pytest.raises(ValueError, match="no event"):
        event_name(modality, level, state)


def test_every_name_parses_back() -> None:
    for name in all_event_names():
        kind = parse_event_name(name)
        assert event_name(kind.modality, kind.level, kind.state) == name


@pytest.mark.parametrize(
    "name", ["linc.oct.batch.ready", "linc.opticstream.psoct.batch", "psoct.batch.ready", ""]
)
def test_parse_rejects_non_canonical_names(name: str) -> None:
    with pytest.raises(ValueError):
        parse_event_name(name)


@pytest.mark.parametrize(
    "ident",
    [PSOCTSliceId("p", 1), PSOCTMosaicId("p", 1, 2), PSOCTBatchId("p", 1, 2, 3),
     PSOCTTileId("p", 1, 2, 3, 7), LSMChannelId("q", 2, 1), LSMStripId("q", 2, 1, 5)],
)
def test_envelope_carries_the_identity_under_its_level_key(ident: object) -> None:
    payload = envelope(ident, {"file_list": ["a.nii"]})  # type: ignore[arg-type]
    key = f"{ident.level}_ident"  # type: ignore[attr-defined]
    assert payload == {key: ident.to_dict(), "file_list": ["a.nii"]}  # type: ignore[attr-defined]
    name = event_name(ident.modality, ident.level, "ready")  # type: ignore[attr-defined]
    assert ident_from_payload(name, payload) == ident


def test_extras_may_not_override_the_identity() -> None:
    batch = PSOCTBatchId("p", 1, 1, 2)
    with pytest.raises(ValueError, match="batch_ident"):
        envelope(batch, {"batch_ident": {"project": "other"}})
    assert "slice_ident" in envelope(batch, {"slice_ident": {"x": 1}})


def test_resource_labels_and_their_override_rule() -> None:
    strip = LSMStripId("proj", 1, 2, 3)
    labels = resource(strip, {"extra": "x"})
    assert labels["linc.opticstream.project"] == "proj"
    assert labels["linc.opticstream.resource.id"] == str(strip)
    with pytest.raises(ValueError, match=r"linc\.opticstream\.project"):
        resource(strip, {"linc.opticstream.project": "other"})


def test_event_builders() -> None:
    mosaic = PSOCTMosaicId("p", 1, 1)
    event = Event.milestone(mosaic, "enface_stitched", {"enface_outputs": {"aip": "a.nii"}})
    assert event.name == events.PSOCT_MOSAIC_ENFACE_STITCHED
    assert event.payload["mosaic_ident"] == mosaic.to_dict()
    assert event.resource["linc.opticstream.project"] == "p"
    assert Event.of(mosaic, "ready").name == events.PSOCT_MOSAIC_READY


def test_a_payload_without_the_identity_is_rejected() -> None:
    with pytest.raises(ValueError, match="no batch_ident"):
        ident_from_payload(events.PSOCT_BATCH_READY, {"file_list": []})
