"""Which table holds which identity, and how identities become keys, filters and ancestors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_

from opticstream_napari.identity import (
    Identity,
    LSMChannelId,
    LSMSliceId,
    LSMStripId,
    PSOCTBatchId,
    PSOCTMosaicId,
    PSOCTSliceId,
    PSOCTTileId,
)
from opticstream_napari.state.milestones import milestone_flags
from opticstream_napari.state.models import (
    LSMChannel,
    LSMProject,
    LSMSlice,
    LSMStrip,
    NodeRow,
    PSOCTBatch,
    PSOCTMosaic,
    PSOCTProject,
    PSOCTSlice,
    PSOCTTile,
)

Modality = Literal["psoct", "lsm"]
MODALITIES: tuple[Modality, ...] = ("psoct", "lsm")


@dataclass(frozen=True, slots=True)
class ProjectKey:
    """A whole project of one modality: the root the identities hang from."""

    modality: Modality
    name: str

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, found {self.modality!r}")
        if not self.name:
            raise ValueError("project name must be non-empty")

    def __str__(self) -> str:
        return f"{self.modality}:{self.name}"


@dataclass(frozen=True, slots=True)
class Level:
    """One level of a hierarchy: its table, identity type and what its rows carry."""

    modality: Modality
    name: str
    model: type[NodeRow]
    ident_type: type[Identity]
    keys: tuple[str, ...]

    @property
    def flags(self) -> tuple[str, ...]:
        return milestone_flags(self.modality, self.name)

    @property
    def claimable(self) -> bool:
        return hasattr(self.model, "claimed_by")


_LEVELS: tuple[Level, ...] = (
    Level("psoct", "slice", PSOCTSlice, PSOCTSliceId, ("project", "slice")),
    Level("psoct", "mosaic", PSOCTMosaic, PSOCTMosaicId, ("project", "slice", "mosaic")),
    Level("psoct", "batch", PSOCTBatch, PSOCTBatchId, ("project", "slice", "mosaic", "batch")),
    Level("psoct", "tile", PSOCTTile, PSOCTTileId,
          ("project", "slice", "mosaic", "batch", "tile")),
    Level("lsm", "slice", LSMSlice, LSMSliceId, ("project", "slice")),
    Level("lsm", "channel", LSMChannel, LSMChannelId, ("project", "slice", "channel")),
    Level("lsm", "strip", LSMStrip, LSMStripId, ("project", "slice", "channel", "strip")),
)
_BY_TYPE = {level.ident_type: level for level in _LEVELS}
_BY_NAME = {(level.modality, level.name): level for level in _LEVELS}
PROJECT_MODELS: dict[str, type[PSOCTProject] | type[LSMProject]] = {
    "psoct": PSOCTProject, "lsm": LSMProject,
}
WORK_UNIT_LEVEL: dict[str, str] = {"psoct": "tile", "lsm": "strip"}


def level_of(ident: Identity) -> Level:
    try:
        return _BY_TYPE[type(ident)]
    except KeyError:
        raise TypeError(f"not a state identity: {ident!r}") from None


def level_named(modality: str, name: str) -> Level:
    try:
        return _BY_NAME[(modality, name)]
    except KeyError:
        known = ", ".join(lv.name for lv in _LEVELS if lv.modality == modality)
        raise ValueError(f"{modality} has no level {name!r} (levels: {known})") from None


def levels_of(modality: str) -> tuple[Level, ...]:
    """The levels of one hierarchy, top (slice) to bottom (tile or strip)."""
    return tuple(level for level in _LEVELS if level.modality == modality)


def child_level(level: Level) -> Level | None:
    chain = levels_of(level.modality)
    index = chain.index(level)
    return chain[index + 1] if index + 1 < len(chain) else None


def project_of(ident: Identity) -> ProjectKey:
    return ProjectKey(ident.modality, ident.project)  # type: ignore[arg-type]


def primary_key(ident: Identity) -> tuple[Any, ...]:
    return tuple(getattr(ident, k) for k in level_of(ident).keys)


def lineage(ident: Identity) -> list[Identity]:
    """The slice-level ancestor down to ``ident`` itself, in creation order."""
    chain: list[Identity] = [ident]
    while hasattr(chain[0], "parent"):
        chain.insert(0, chain[0].parent)  # type: ignore[union-attr]
    return chain


def ident_of_row(level: Level, row: Any) -> Identity:
    """Rebuild the identity from a row (or any object with the key attributes)."""
    return level.ident_type(**{k: getattr(row, k) for k in level.keys})  # type: ignore[arg-type]


def within(model: type[NodeRow], scope: Identity | ProjectKey) -> ColumnElement[bool]:
    """Rows of ``model`` at or below ``scope`` (a key-prefix filter)."""
    if isinstance(scope, ProjectKey):
        return model.project == scope.name  # type: ignore[return-value]
    columns = level_of(scope).keys
    return and_(*(getattr(model, k) == getattr(scope, k) for k in columns))
