"""Where numba keeps the compiled kernels: one directory per version of this package's source.

numba checks a cached function against the file it is defined in, and only that file. A kernel
that calls a kernel of another module (the spectral preparation calls the DC median) keeps
running the old callee after only that module changed, for instance after a ``git pull`` in a
checkout. Keying the cache directory by a digest of every source file gives each version of
the package its own compiled kernels. An explicit ``NUMBA_CACHE_DIR`` is left alone.

This runs from the package's ``__init__``, before any kernel module is imported: numba picks a
function's cache directory when the function is decorated.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

ENV_VAR = "NUMBA_CACHE_DIR"
KEEP = 4  # source versions whose kernels stay cached; older ones are removed


def source_digest(package_root: Path) -> str:
    """A digest of the names and contents of every ``.py`` file under ``package_root``."""
    digest = hashlib.blake2b(digest_size=8)
    for path in sorted(package_root.rglob("*.py")):
        digest.update(path.relative_to(package_root).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def default_root() -> Path:
    """``$XDG_CACHE_HOME/opticstream-napari/numba`` (``~/.cache`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "opticstream-napari" / "numba"


def key_numba_cache(package_root: Path, root: Path | None = None) -> Path | None:
    """Point numba's cache at ``root / <digest of package_root>``; None if ``NUMBA_CACHE_DIR`` is set.

    The variable is set too, so worker processes started from this one use the same directory.
    """
    if os.environ.get(ENV_VAR):
        return None
    root = default_root() if root is None else root
    directory = root / source_digest(package_root)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        os.utime(directory)
    except OSError:
        return None  # an unwritable cache: numba falls back to its own locations
    os.environ[ENV_VAR] = str(directory)
    numba = sys.modules.get("numba")
    if numba is not None:  # imported already (napari imports it): its config has read the environment
        numba.config.CACHE_DIR = str(directory)
    _prune(root, directory)
    return directory


def _prune(root: Path, current: Path) -> None:
    """Remove all but the ``KEEP`` most recently used versions' directories."""
    try:
        versions = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError:
        return
    for stale in [p for p in versions if p != current][KEEP - 1 :]:
        shutil.rmtree(stale, ignore_errors=True)
