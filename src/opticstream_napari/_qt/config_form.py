"""The scan-config form: the fields operators edit, each with its validation message beside it.

The form round-trips the pydantic model: :meth:`ConfigForm.setValue` keeps the whole config as
the base, the editors overwrite only their own fields, and :meth:`ConfigForm.value` is the
model validated from both, so fields without an editor (processing, outputs) survive a save.
Validation is the models' own; the form only places each message next to its field.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from qtpy.QtCore import Signal
from qtpy.QtGui import QColor, QPalette
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from opticstream_napari._qt.database_url import DatabaseUrlField
from opticstream_napari.config import LSMScanConfig, PSOCTScanConfig
from opticstream_napari.viewer_link import ScanConfigModel

MODELS: dict[str, type[PSOCTScanConfig] | type[LSMScanConfig]] = {"psoct": PSOCTScanConfig, "lsm": LSMScanConfig}
MODALITY_NAMES = {"psoct": "PS-OCT", "lsm": "Light-sheet"}
ERROR_COLOUR = QColor(220, 80, 80)


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One edited field: its path in the model, its label, and whether it names a folder."""

    path: tuple[str, ...]
    label: str
    folder: bool = False

    @property
    def key(self) -> str:
        return ".".join(self.path)


COMMON_FIELDS = (
    FieldSpec(("project_name",), "Project"),
    FieldSpec(("project_base_path",), "Project folder", folder=True),
)
MODALITY_FIELDS: dict[str, tuple[FieldSpec, ...]] = {
    "psoct": (
        FieldSpec(("acquisition", "grid_size_x_normal"), "Columns, normal mosaic"),
        FieldSpec(("acquisition", "grid_size_x_tilted"), "Columns, tilted mosaic"),
        FieldSpec(("acquisition", "grid_size_y"), "Tiles per column"),
        FieldSpec(("acquisition", "tile_overlap"), "Tile overlap (%)"),
        FieldSpec(("mask_threshold_normal",), "Mask threshold, normal (dB)"),
        FieldSpec(("mask_threshold_tilted",), "Mask threshold, tilted (dB)"),
        FieldSpec(("focus_threshold_normal",), "Focus threshold, normal (dB)"),
        FieldSpec(("focus_threshold_tilted",), "Focus threshold, tilted (dB)"),
    ),
    "lsm": (
        FieldSpec(("strips_per_slice",), "Strips per slice"),
        FieldSpec(("strip_folder_size_threshold",), "Smallest strip folder (GB)"),
        FieldSpec(("min_strip_files",), "Fewest files per strip"),
    ),
}
DATABASE_KEY = "database_url"


def describe(model: type[BaseModel], path: tuple[str, ...]) -> str:
    """The field's own description from the model, for the tooltip."""
    field = model.model_fields[path[0]]
    if len(path) == 1:
        return field.description or ""
    nested = field.annotation
    return describe(nested, path[1:]) if isinstance(nested, type) and issubclass(nested, BaseModel) else ""


def put(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """Set ``data[path]``, creating nested mappings; ``None`` removes the key (the model's default applies)."""
    for part in path[:-1]:
        data = data.setdefault(part, {})
    if value is None:
        data.pop(path[-1], None)
    else:
        data[path[-1]] = value


def get(data: dict[str, Any], path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


class ErrorLabel(QLabel):
    """A validation message under its field, hidden while there is none."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        palette = self.palette()
        palette.setColor(QPalette.ColorRole.WindowText, ERROR_COLOUR)
        self.setPalette(palette)
        self.hide()

    def show_error(self, text: str) -> None:
        self.setText(text)
        self.setVisible(bool(text))


class ConfigForm(QWidget):
    """``value()`` is the valid config or ``None``; ``valueChanged`` fires with each new valid config."""

    valueChanged = Signal(object)
    validityChanged = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._bases: dict[str, dict[str, Any]] = {m: {"modality": m} for m in MODELS}
        self._value: ScanConfigModel | None = None
        self._loading = False
        self.modality = QComboBox()
        for modality, name in MODALITY_NAMES.items():
            self.modality.addItem(name, modality)
        self.editors: dict[str, QLineEdit] = {}
        self.errors: dict[str, ErrorLabel] = {}
        self.database = DatabaseUrlField()
        self.general_error = ErrorLabel()
        common = QFormLayout()
        common.addRow("Modality", self.modality)
        for spec in COMMON_FIELDS:
            self._add_row(common, spec, "psoct")
        self.errors[DATABASE_KEY] = ErrorLabel()
        common.addRow("Database URL", self.database)
        common.addRow(self.errors[DATABASE_KEY])
        self.pages = QStackedWidget()
        for modality, specs in MODALITY_FIELDS.items():
            page = QWidget()
            form = QFormLayout(page)
            form.setContentsMargins(0, 0, 0, 0)
            for spec in specs:
                self._add_row(form, spec, modality)
            self.pages.addWidget(page)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(common)
        layout.addWidget(self.pages)
        layout.addWidget(self.general_error)
        self.modality.currentIndexChanged.connect(self._on_modality)
        self.database.valueChanged.connect(self._validate)

    def _add_row(self, form: QFormLayout, spec: FieldSpec, modality: str) -> None:
        """The field's row, and under it a full-width row for its message."""
        form.addRow(spec.label, self._field(spec, modality))
        form.addRow(self.errors[spec.key])

    def _field(self, spec: FieldSpec, modality: str) -> QWidget:
        editor = QLineEdit()
        editor.setToolTip(describe(MODELS[modality], spec.path))
        editor.textChanged.connect(self._validate)
        self.editors[spec.key] = editor
        self.errors[spec.key] = ErrorLabel()
        row: QWidget = editor
        if spec.folder:
            browse = QToolButton()
            browse.setText("…")
            browse.setToolTip("Choose the folder")
            browse.clicked.connect(lambda: self._choose_folder(editor))
            row = QWidget()
            line = QHBoxLayout(row)
            line.setContentsMargins(0, 0, 0, 0)
            line.addWidget(editor, 1)
            line.addWidget(browse)
        return row

    def _choose_folder(self, editor: QLineEdit) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Project folder", editor.text())
        if folder:
            editor.setText(folder)

    # ------------------------------------------------------------------ value

    def current_modality(self) -> str:
        return str(self.modality.currentData())

    def value(self) -> ScanConfigModel | None:
        return self._value

    def setValue(self, config: ScanConfigModel) -> None:
        """Show ``config``; every field it has, edited here or not, is kept for :meth:`value`."""
        data = config.model_dump(mode="json")
        self._bases[config.modality] = copy.deepcopy(data)
        self._fill(config.modality, data)

    def clear(self, modality: str, database_url: str | None = None) -> None:
        """Start a new config of ``modality``: empty fields (their messages say what is needed)."""
        self._bases[modality] = {"modality": modality, DATABASE_KEY: database_url}
        self._fill(modality, self._bases[modality])

    def _fill(self, modality: str, data: dict[str, Any]) -> None:
        self._loading = True
        try:
            self.modality.setCurrentIndex(self.modality.findData(modality))
            self.pages.setCurrentIndex(list(MODELS).index(modality))
            for spec in (*COMMON_FIELDS, *MODALITY_FIELDS[modality]):
                value = get(data, spec.path)
                self.editors[spec.key].setText("" if value is None else str(value))
            self.database.setValue(data.get(DATABASE_KEY))
        finally:
            self._loading = False
        self._validate()

    def data(self) -> dict[str, Any]:
        """The base config with the editors' text in place (empty text: the field is left out)."""
        modality = self.current_modality()
        data = copy.deepcopy(self._bases[modality])
        for spec in (*COMMON_FIELDS, *MODALITY_FIELDS[modality]):
            put(data, spec.path, self.editors[spec.key].text().strip() or None)
        data[DATABASE_KEY] = self.database.value()
        return data

    def _on_modality(self) -> None:
        if self._loading:
            return
        modality = self.current_modality()
        base = self._bases[modality]
        for spec in COMMON_FIELDS:
            put(base, spec.path, self.editors[spec.key].text().strip() or None)
        base[DATABASE_KEY] = self.database.value()
        self._fill(modality, base)

    def _validate(self) -> None:
        if self._loading:
            return
        for label in (*self.errors.values(), self.general_error):
            label.show_error("")
        try:
            config = MODELS[self.current_modality()].model_validate(self.data())
        except ValidationError as error:
            self._show_errors(error)
            changed = self._value is not None
            self._value = None
            if changed:
                self.validityChanged.emit(False)
            return
        became_valid = self._value is None
        self._value = config
        if became_valid:
            self.validityChanged.emit(True)
        self.valueChanged.emit(config)

    def _show_errors(self, error: ValidationError) -> None:
        elsewhere = []
        for item in error.errors(include_url=False):
            key = ".".join(str(part) for part in item["loc"])
            message = "required" if item["type"] == "missing" else item["msg"]
            if key in self.errors:
                self.errors[key].show_error(message)
            else:
                elsewhere.append(f"{key or 'config'}: {message}")
        self.general_error.show_error("\n".join(elsewhere))

    def field_errors(self) -> dict[str, str]:
        """The messages now shown beside fields, by dotted field path."""
        return {key: label.text() for key, label in self.errors.items() if label.text()}
