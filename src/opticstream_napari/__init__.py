"""opticstream-napari: live processing of LINC light-sheet and PS-OCT acquisitions in napari."""

__version__ = "0.1.0"
