"""opticstream-napari: live processing of LINC light-sheet and PS-OCT acquisitions in napari."""

from pathlib import Path

from opticstream_napari.jit_cache import key_numba_cache

__version__ = "0.1.0"

key_numba_cache(Path(__file__).parent)
