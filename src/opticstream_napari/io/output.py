"""Output folders: fail early, with the path in the message, when one cannot be written."""

from __future__ import annotations

import os
import uuid
from pathlib import Path


class OutputError(OSError):
    """An output cannot be written where it was asked for; the message names the path."""


def ensure_output_dir(folder: str | os.PathLike[str]) -> Path:
    """Create ``folder`` if needed and prove it is writable by creating and removing a probe.

    ``os.access`` is not enough: it says yes to root on read-only mounts and knows nothing of
    quotas, so a mosaic would fail hours later on its first chunk instead of here.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-probe-{uuid.uuid4().hex[:8]}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"output folder {folder} is not writable: {exc.strerror or exc}") from exc
    return folder
