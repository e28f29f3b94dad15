"""Shared base for every scan-config model: strict, validated on assignment."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ConfigModel(BaseModel):
    """Unknown keys are errors so a typo in a YAML file never silently falls back to a default."""

    model_config = ConfigDict(
        extra="forbid",
        validate_assignment=True,
        validate_default=True,
        use_enum_values=False,
    )
