"""Milestone flags of each level and which later flags a reset invalidates (spec 1.2, 1.3).

A reset clears the flag and, transitively, every flag whose artefact was derived from it:
re-running a step must not leave a stale upload marked as done.
"""

from __future__ import annotations

from collections.abc import Mapping

# (modality, level) -> flag -> flags that the flag's reset also clears (direct dependants).
_DEPENDANTS: dict[tuple[str, str], dict[str, tuple[str, ...]]] = {
    ("lsm", "strip"): {
        "compressed": ("uploaded",),
        "archived": (),
        "uploaded": (),
    },
    ("lsm", "channel"): {
        "mip_stitched": ("volume_stitched",),
        "volume_stitched": ("volume_uploaded",),
        "volume_uploaded": (),
    },
    ("psoct", "batch"): {
        "complexed": ("volume_processed", "enface_processed"),
        "volume_processed": (),
        "enface_processed": (),
        "archived": ("uploaded",),
        "uploaded": (),
    },
    ("psoct", "mosaic"): {
        "enface_stitched": ("enface_uploaded",),
        "volume_stitched": ("volume_uploaded",),
        "enface_uploaded": (),
        "volume_uploaded": (),
    },
    ("psoct", "slice"): {
        "registered": ("uploaded",),
        "uploaded": (),
    },
}


def milestone_flags(modality: str, level: str) -> tuple[str, ...]:
    """The flags a node of this level carries, in pipeline order; empty for tiles and LSM slices."""
    return tuple(_DEPENDANTS.get((modality, level), {}))


def reset_closure(modality: str, level: str, flag: str) -> tuple[str, ...]:
    """``flag`` followed by every flag its reset clears, transitively, in pipeline order."""
    table = _table(modality, level, flag)
    cleared: set[str] = set()
    pending = [flag]
    while pending:
        current = pending.pop()
        if current not in cleared:
            cleared.add(current)
            pending.extend(table[current])
    return tuple(f for f in table if f in cleared)


def _table(modality: str, level: str, flag: str) -> Mapping[str, tuple[str, ...]]:
    table = _DEPENDANTS.get((modality, level), {})
    if flag not in table:
        known = ", ".join(table) or "none"
        raise ValueError(f"{modality} {level} has no milestone {flag!r} (known: {known})")
    return table
