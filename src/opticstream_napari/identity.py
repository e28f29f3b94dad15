"""Typed identities of every unit of work, passed explicitly between steps.

The original recovered identity by parsing flow-run names; here every event, state row and
log line carries one of these. Indices are 1-based, as the instruments number them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, Self


@dataclass(frozen=True, slots=True, order=True)
class _Identity:
    level: ClassVar[str]
    modality: ClassVar[str]
    project: str

    def __post_init__(self) -> None:
        if not self.project:
            raise ValueError(f"{type(self).__name__}: project must be a non-empty name")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "project" and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{type(self).__name__}: {f.name} must be an integer >= 1, found {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return cls(**{f.name: data[f.name] for f in fields(cls)})

    def __str__(self) -> str:
        parts = [f"{f.name}={getattr(self, f.name)}" for f in fields(self) if f.name != "project"]
        return f"{self.modality}:{self.project}/" + "/".join(parts)


@dataclass(frozen=True, slots=True, order=True)
class PSOCTSliceId(_Identity):
    level: ClassVar[str] = "slice"
    modality: ClassVar[str] = "psoct"
    slice: int


@dataclass(frozen=True, slots=True, order=True)
class PSOCTMosaicId(_Identity):
    level: ClassVar[str] = "mosaic"
    modality: ClassVar[str] = "psoct"
    slice: int
    mosaic: int

    @property
    def parent(self) -> PSOCTSliceId:
        return PSOCTSliceId(self.project, self.slice)


@dataclass(frozen=True, slots=True, order=True)
class PSOCTBatchId(_Identity):
    level: ClassVar[str] = "batch"
    modality: ClassVar[str] = "psoct"
    slice: int
    mosaic: int
    batch: int

    @property
    def parent(self) -> PSOCTMosaicId:
        return PSOCTMosaicId(self.project, self.slice, self.mosaic)


@dataclass(frozen=True, slots=True, order=True)
class PSOCTTileId(_Identity):
    level: ClassVar[str] = "tile"
    modality: ClassVar[str] = "psoct"
    slice: int
    mosaic: int
    batch: int
    tile: int

    @property
    def parent(self) -> PSOCTBatchId:
        return PSOCTBatchId(self.project, self.slice, self.mosaic, self.batch)


@dataclass(frozen=True, slots=True, order=True)
class LSMSliceId(_Identity):
    level: ClassVar[str] = "slice"
    modality: ClassVar[str] = "lsm"
    slice: int


@dataclass(frozen=True, slots=True, order=True)
class LSMChannelId(_Identity):
    level: ClassVar[str] = "channel"
    modality: ClassVar[str] = "lsm"
    slice: int
    channel: int

    @property
    def parent(self) -> LSMSliceId:
        return LSMSliceId(self.project, self.slice)


@dataclass(frozen=True, slots=True, order=True)
class LSMStripId(_Identity):
    level: ClassVar[str] = "strip"
    modality: ClassVar[str] = "lsm"
    slice: int
    channel: int
    strip: int

    @property
    def parent(self) -> LSMChannelId:
        return LSMChannelId(self.project, self.slice, self.channel)


Identity = (
    PSOCTSliceId | PSOCTMosaicId | PSOCTBatchId | PSOCTTileId | LSMSliceId | LSMChannelId | LSMStripId
)

IDENTITY_TYPES: dict[tuple[str, str], type[_Identity]] = {
    (cls.modality, cls.level): cls
    for cls in (
        PSOCTSliceId, PSOCTMosaicId, PSOCTBatchId, PSOCTTileId, LSMSliceId, LSMChannelId, LSMStripId
    )
}


def identity_from_dict(modality: str, level: str, data: dict[str, Any]) -> Identity:
    """Rebuild an identity from an event payload or a state row."""
    try:
        cls = IDENTITY_TYPES[(modality, level)]
    except KeyError:
        raise ValueError(f"no identity type for modality {modality!r} and level {level!r}") from None
    return cls.from_dict(data)  # type: ignore[return-value]
