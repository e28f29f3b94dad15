"""First-time costs of napari layers, paid on a worker thread before the first layers arrive.

The first layer of a kind costs napari far more than the next one, and on the GUI thread: its
first labels layer imports pandas, scipy.linalg and skimage; dask's first compute of a pyramid
level imports distributed to look for a client; the first shapes layer loads napari's numba
triangulation kernels (1.2 s on the 2-core test machine, 0.13 s once warm). Importing those
modules and building a throwaway shapes and labels layer, which are Qt-free models until a
viewer adds them, moves that work off the GUI thread.
"""

from __future__ import annotations

import importlib
import logging
import sys

import numpy as np

log = logging.getLogger(__name__)

MODULES = ("pandas", "scipy.linalg", "skimage", "distributed")


def is_warm() -> bool:
    return all(name in sys.modules for name in MODULES) and "napari.layers.shapes._shapes_utils" in sys.modules


def warm_up_layers() -> None:
    for name in MODULES:
        importlib.import_module(name)
    from napari.layers import Labels, Shapes

    square = np.array([[0.0, 0.0], [0.0, 4.0], [4.0, 4.0], [4.0, 0.0]])
    Shapes([square], shape_type="rectangle", features={"tile": [1]}, text={"string": "{tile}", "size": 9})
    Labels(np.zeros((4, 4), np.uint8))
    log.debug("napari layer kinds warmed up")
