"""Markdown reference of every config field, generated from the models themselves.

Run ``python -m opticstream_napari.config.reference > docs/configuration.md``; a test checks the
committed file is current, so the reference cannot drift from the code.
"""

from __future__ import annotations

import json
from enum import Enum
from typing import Literal, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from opticstream_napari.config.lsm import LSMScanConfig
from opticstream_napari.config.psoct import (
    PSOCTAcquisitionParams,
    PSOCTProcessingParams,
    PSOCTScanConfig,
)
from opticstream_napari.config.zarr import ZarrConfig

SECTIONS: tuple[tuple[str, type[BaseModel]], ...] = (
    ("PS-OCT scan config (`modality: psoct`)", PSOCTScanConfig),
    ("PS-OCT `acquisition`", PSOCTAcquisitionParams),
    ("PS-OCT `processing`", PSOCTProcessingParams),
    ("Light-sheet scan config (`modality: lsm`)", LSMScanConfig),
    ("`zarr_config` (both modalities)", ZarrConfig),
)

HEADER = """# Configuration reference

Generated from the models by `python -m opticstream_napari.config.reference`; do not edit by hand.

Scan configs are YAML files. Lengths are in µm, angles in degrees, intensities in dB, unless a
field says otherwise. Unknown keys are errors, and a file that does not load is never
overwritten by a save.
"""


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return "**required**"
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return "see below"
    if isinstance(value, list):
        value = [v.value if isinstance(v, Enum) else v for v in value]
    if isinstance(value, Enum):
        value = value.value
    return f"`{json.dumps(value, default=str)}`"


def _type(annotation: object) -> str:
    if get_origin(annotation) is Literal:
        return " or ".join(json.dumps(a) for a in get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return " or ".join(f'"{m.value}"' for m in annotation)
    text = getattr(annotation, "__name__", None) or str(annotation)
    return text.replace("typing.", "").replace("pathlib.", "").replace("|", "\\|")


def render() -> str:
    parts = [HEADER]
    for title, model in SECTIONS:
        parts.append(f"\n## {title}\n\n| field | type | default | meaning |\n|---|---|---|---|")
        for name, field in model.model_fields.items():
            meaning = (field.description or "").replace("|", "\\|")
            parts.append(f"| `{name}` | {_type(field.annotation)} | {_default(field)} | {meaning} |")
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    print(render(), end="")
