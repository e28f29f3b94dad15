"""Loading and saving scan configs as YAML: lossless, atomic, and loud about bad input."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import Field, TypeAdapter, ValidationError

from opticstream_napari.config.lsm import LSMScanConfig
from opticstream_napari.config.psoct import PSOCTScanConfig

ScanConfig = Annotated[LSMScanConfig | PSOCTScanConfig, Field(discriminator="modality")]
_ADAPTER: TypeAdapter[LSMScanConfig | PSOCTScanConfig] = TypeAdapter(ScanConfig)


class ConfigError(ValueError):
    """A config that cannot be used; the message names the file, the field and the value."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid scan config {source}:\n{lines}")

    def __reduce__(self) -> tuple[type, tuple[object, ...]]:
        return type(self), (self.source, self.problems)  # crosses to and from worker processes


def describe_validation_error(error: ValidationError) -> list[str]:
    """One readable line per problem: dotted field path, what is allowed, what was found."""
    problems = []
    for item in error.errors(include_url=False):
        loc = ".".join(str(part) for part in item["loc"]) or "<root>"
        message = item["msg"]
        if item["type"] == "missing":
            problems.append(f"field '{loc}': required but missing")
        elif item["type"] == "extra_forbidden":
            problems.append(f"field '{loc}': unknown field (found {item['input']!r})")
        else:
            problems.append(f"field '{loc}': {message} (found {item['input']!r})")
    return problems


def parse_config(data: Any, source: str = "<data>") -> LSMScanConfig | PSOCTScanConfig:
    """Validate a mapping (as read from YAML) into a scan config."""
    if not isinstance(data, dict):
        raise ConfigError(source, [f"expected a mapping at the top level, found {type(data).__name__}"])
    if "modality" not in data:
        raise ConfigError(source, ["field 'modality': required, one of 'lsm' or 'psoct'"])
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as error:
        problems = describe_validation_error(error)
        prefix = f"{data['modality']}."
        problems = [p.replace(f"'{prefix}", "'", 1) for p in problems]
        raise ConfigError(source, problems) from None


def load_config(path: str | os.PathLike[str]) -> LSMScanConfig | PSOCTScanConfig:
    """Read and validate a YAML scan config."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(str(path), [f"cannot read the file: {error.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(str(path), [f"not valid YAML: {error}"]) from None
    return parse_config(data, str(path))


def config_to_yaml(config: LSMScanConfig | PSOCTScanConfig) -> str:
    """Serialise every field, defaults included, so the file documents the full run."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def save_config(
    config: LSMScanConfig | PSOCTScanConfig,
    path: str | os.PathLike[str],
    *,
    replace_invalid: bool = False,
) -> Path:
    """Write atomically; refuse to clobber an existing file that does not load.

    An operator's hand-edited file with a typo must not vanish because the GUI saved defaults
    over it; ``replace_invalid=True`` is the explicit override.
    """
    path = Path(path)
    if path.exists() and not replace_invalid:
        try:
            load_config(path)
        except ConfigError as error:
            raise ConfigError(
                str(path),
                ["refusing to overwrite a config file that does not load; fix or move it first",
                 *error.problems],
            ) from None
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(config_to_yaml(config))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
