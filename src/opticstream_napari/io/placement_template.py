"""The per-acquisition placement template file under the project's base folder.

Made on the first slice of an acquisition label and reused for every later slice; a refresh
recomputes and replaces it. The file is written atomically, so a reader never sees half of it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from opticstream_napari.io.atomic import atomic_write_text
from opticstream_napari.layout import Grid
from opticstream_napari.naming import placement_template_name
from opticstream_napari.processing.stitch.template import PlacementTemplate, TemplateError


def placement_template_path(project_base: str | os.PathLike[str], acquisition: str) -> Path:
    return Path(project_base) / placement_template_name(acquisition)


def save_placement_template(
    project_base: str | os.PathLike[str], template: PlacementTemplate
) -> Path:
    path = placement_template_path(project_base, template.acquisition)
    return atomic_write_text(path, template.to_yaml())


def load_placement_template(
    project_base: str | os.PathLike[str],
    acquisition: str,
    *,
    grid: Grid | None = None,
    tile_shape: Sequence[int] | None = None,
) -> PlacementTemplate:
    """Read the template; with ``grid`` and ``tile_shape``, also check that it fits them.

    Raises FileNotFoundError when there is none, :class:`TemplateError` (naming the file) when
    it is malformed, belongs to another acquisition, or does not fit.
    """
    path = placement_template_path(project_base, acquisition)
    template = PlacementTemplate.from_yaml(path.read_text(encoding="utf-8"), where=str(path))
    if template.acquisition != acquisition:
        raise TemplateError(
            f"{path}: holds the template of {template.acquisition!r}, not {acquisition!r}"
        )
    if grid is not None and tile_shape is not None:
        template.check_fits(grid, tile_shape, where=str(path))
    return template


def placement_template_for(
    project_base: str | os.PathLike[str],
    acquisition: str,
    make: Callable[[], PlacementTemplate],
    *,
    grid: Grid,
    tile_shape: Sequence[int],
    refresh: bool = False,
) -> PlacementTemplate:
    """The stored template if there is one and ``refresh`` is off; else ``make()``, stored.

    A stored template that does not fit ``grid``/``tile_shape`` is an error, never silently
    replaced: the user decides to refresh. A made one must fit too.
    """
    if not refresh:
        try:
            return load_placement_template(
                project_base, acquisition, grid=grid, tile_shape=tile_shape
            )
        except FileNotFoundError:
            pass
    template = make()
    if template.acquisition != acquisition:
        raise TemplateError(
            f"asked for the template of {acquisition!r}, made one for {template.acquisition!r}"
        )
    template.check_fits(grid, tile_shape)
    save_placement_template(project_base, template)
    return template
