"""Atomic writes: a crash never leaves a file or folder that looks complete.

Outputs are written under a hidden temporary name in the destination folder and renamed into
place only once complete, so the rename is atomic on the same filesystem.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TEMP_MARK = ".partial-"


def temporary_sibling(final: Path) -> Path:
    """A hidden name next to ``final`` that no reader or watcher mistakes for an output."""
    return final.with_name(f".{final.name}{TEMP_MARK}{uuid.uuid4().hex[:8]}")


def is_temporary(path: Path) -> bool:
    return path.name.startswith(".") and TEMP_MARK in path.name


@contextmanager
def atomic_path(final: str | os.PathLike[str], *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write a file or folder to; move it to ``final`` on success.

    On error the temporary is removed and ``final`` is untouched. Replacing an existing folder
    is done by renaming the old one aside first, so readers see either the old or the new one.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists() and not overwrite:
        raise FileExistsError(f"{final} exists and overwrite is off")
    tmp = temporary_sibling(final)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written to the temporary {tmp} for {final}")
        fsync_tree(tmp)
        if tmp.is_dir() and final.exists():
            old = temporary_sibling(final)
            os.replace(final, old)
            os.replace(tmp, final)
            remove_path(old)
        else:
            os.replace(tmp, final)
        fsync_dir(final.parent)
    except BaseException:
        remove_path(tmp)
        raise


def atomic_write_bytes(final: str | os.PathLike[str], data: bytes) -> Path:
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)
    return Path(final)


def atomic_write_text(final: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(final, text.encode("utf-8"))


def remove_path(path: Path) -> None:
    """Remove a file or a folder tree, whichever ``path`` is; nothing if it is gone."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def fsync_tree(path: Path) -> None:
    """Flush a file, or every file under a folder, to the disk."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for file in files:
        fd = os.open(file, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
