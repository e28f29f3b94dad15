"""The one module that names events and builds their envelope (spec 6.1, 6.2).

Names follow ``linc.opticstream.{psoct|lsm}.{level}.{state}``. A state is one of:

- a *signal* of spec 6.1 (``batch.ready``, ``mosaic.volume_stitched`` …), plus the real
  ``mosaic.enface_stitched`` the original lacked (it reused ``mosaic.uploaded``), and the
  milestones the original never announced (``batch.volume_processed``, ``slice.uploaded``);
- a lifecycle state (``pending``, ``running``, ``completed``, ``failed``, ``skipped``), logged on
  every transition of every level, tiles included;
- bookkeeping: ``reset`` (milestone flags cleared), ``removed`` (subtree deleted) and
  ``milestone_failed``.

The payload is ``{"<level>_ident": {...identity...}, **extra}``; extras may not replace the base
keys, so a consumer can always trust where the identity is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opticstream_napari.identity import Identity, identity_from_dict
from opticstream_napari.state.lifecycle import Lifecycle

PREFIX = "linc.opticstream"
PROJECT_KEY = "linc.opticstream.project"
RESOURCE_ID_KEY = "linc.opticstream.resource.id"

_SIGNALS: dict[tuple[str, str], tuple[str, ...]] = {
    ("psoct", "slice"): ("ready", "registered", "uploaded"),
    ("psoct", "mosaic"): (
        "ready", "enface_stitched", "volume_stitched", "enface_uploaded", "volume_uploaded",
    ),
    ("psoct", "batch"): (
        "ready", "complexed", "processed", "volume_processed", "archived", "uploaded",
    ),
    ("psoct", "tile"): ("ready",),
    ("lsm", "slice"): (),
    ("lsm", "channel"): ("ready", "mip_stitched", "volume_stitched", "volume_uploaded"),
    ("lsm", "strip"): ("ready", "processed", "compressed", "uploaded", "archived"),
}
BOOKKEEPING = ("reset", "removed", "milestone_failed")
# A milestone is announced under its flag's name except where spec 6.1 says otherwise.
_MILESTONE_SIGNAL = {("psoct", "batch", "enface_processed"): "processed"}


def _states(modality: str, level: str) -> tuple[str, ...]:
    return _SIGNALS[(modality, level)] + tuple(s.value for s in Lifecycle) + BOOKKEEPING


def event_name(modality: str, level: str, state: str) -> str:
    """The canonical name; unknown combinations are errors, so typos never reach a consumer."""
    if (modality, level) not in _SIGNALS:
        raise ValueError(f"no event level {modality}.{level}")
    if state not in _states(modality, level):
        raise ValueError(
            f"no event {modality}.{level}.{state} (known: {', '.join(_states(modality, level))})"
        )
    return f"{PREFIX}.{modality}.{level}.{state}"


def milestone_event_name(modality: str, level: str, flag: str) -> str:
    """The event announcing that a milestone flag became true."""
    return event_name(modality, level, _MILESTONE_SIGNAL.get((modality, level, flag), flag))


def all_event_names() -> frozenset[str]:
    return frozenset(
        event_name(modality, level, state)
        for modality, level in _SIGNALS
        for state in _states(modality, level)
    )


@dataclass(frozen=True, slots=True)
class EventKind:
    modality: str
    level: str
    state: str


def parse_event_name(name: str) -> EventKind:
    """Split a canonical name; raise ``ValueError`` for anything that is not one."""
    head, _, rest = name.rpartition(".")
    head, _, level = head.rpartition(".")
    prefix, _, modality = head.rpartition(".")
    if prefix != PREFIX or event_name(modality, level, rest) != name:
        raise ValueError(f"not a canonical opticstream event name: {name!r}")
    return EventKind(modality, level, rest)


# The names of spec 6.1, as constants for the engine's subscriptions.
PSOCT_BATCH_READY = event_name("psoct", "batch", "ready")
PSOCT_BATCH_COMPLEXED = event_name("psoct", "batch", "complexed")
PSOCT_BATCH_PROCESSED = event_name("psoct", "batch", "processed")
PSOCT_BATCH_ARCHIVED = event_name("psoct", "batch", "archived")
PSOCT_BATCH_UPLOADED = event_name("psoct", "batch", "uploaded")
PSOCT_MOSAIC_READY = event_name("psoct", "mosaic", "ready")
PSOCT_MOSAIC_ENFACE_STITCHED = event_name("psoct", "mosaic", "enface_stitched")
PSOCT_MOSAIC_VOLUME_STITCHED = event_name("psoct", "mosaic", "volume_stitched")
PSOCT_MOSAIC_VOLUME_UPLOADED = event_name("psoct", "mosaic", "volume_uploaded")
PSOCT_MOSAIC_ENFACE_UPLOADED = event_name("psoct", "mosaic", "enface_uploaded")
PSOCT_SLICE_READY = event_name("psoct", "slice", "ready")
PSOCT_SLICE_REGISTERED = event_name("psoct", "slice", "registered")
LSM_STRIP_READY = event_name("lsm", "strip", "ready")
LSM_STRIP_PROCESSED = event_name("lsm", "strip", "processed")
LSM_STRIP_COMPRESSED = event_name("lsm", "strip", "compressed")
LSM_STRIP_UPLOADED = event_name("lsm", "strip", "uploaded")
LSM_STRIP_ARCHIVED = event_name("lsm", "strip", "archived")
LSM_CHANNEL_READY = event_name("lsm", "channel", "ready")
LSM_CHANNEL_MIP_STITCHED = event_name("lsm", "channel", "mip_stitched")
LSM_CHANNEL_VOLUME_STITCHED = event_name("lsm", "channel", "volume_stitched")
LSM_CHANNEL_VOLUME_UPLOADED = event_name("lsm", "channel", "volume_uploaded")


def ident_key(level: str) -> str:
    """Payload key of the identity: ``batch_ident``, ``strip_ident`` …"""
    return f"{level}_ident"


def _merge(base: dict[str, Any], extra: Mapping[str, Any] | None, what: str) -> dict[str, Any]:
    clash = sorted(set(base) & set(extra or {}))
    if clash:
        raise ValueError(f"extra {what} entries may not override {', '.join(clash)}")
    return {**base, **(extra or {})}


def envelope(ident: Identity, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The payload ``{"<level>_ident": {...}, **extra}``; overriding the identity raises."""
    return _merge({ident_key(ident.level): ident.to_dict()}, extra, "payload")


def resource(ident: Identity, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Routing labels: the unit's printable id and its project, for per-project filters."""
    return _merge({RESOURCE_ID_KEY: str(ident), PROJECT_KEY: ident.project}, extra, "resource")


def ident_from_payload(name: str, payload: Mapping[str, Any]) -> Identity:
    """The identity an event is about, read back from its envelope."""
    kind = parse_event_name(name)
    try:
        data = payload[ident_key(kind.level)]
    except KeyError:
        raise ValueError(f"event {name} has no {ident_key(kind.level)} in its payload") from None
    return identity_from_dict(kind.modality, kind.level, data)


@dataclass(frozen=True, slots=True)
class Event:
    """An event about one unit of work: its canonical name and envelope."""

    name: str
    ident: Identity
    payload: dict[str, Any] = field(default_factory=dict)

    @property
    def resource(self) -> dict[str, Any]:
        return resource(self.ident)

    @classmethod
    def of(cls, ident: Identity, state: str, extra: Mapping[str, Any] | None = None) -> Event:
        return cls(event_name(ident.modality, ident.level, state), ident, envelope(ident, extra))

    @classmethod
    def milestone(
        cls, ident: Identity, flag: str, extra: Mapping[str, Any] | None = None
    ) -> Event:
        name = milestone_event_name(ident.modality, ident.level, flag)
        return cls(name, ident, envelope(ident, extra))

