"""File ▸ Export…: the current model as a Keras file or script, a PyTorch folder or ONNX.

A thin dialog over engine.export: one choice per format with the engine's one-line
description, what the format cannot express listed before anything is written (that
format is then disabled, with the reason), a target path whose ending follows the format,
and one message when done. Writing is quick (no progress): it runs on the GUI thread.
"""

from __future__ import annotations

import re
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (QButtonGroup, QDialog, QDialogButtonBox, QFileDialog, QHBoxLayout, QLabel, QLineEdit,
                               QMessageBox, QPushButton, QRadioButton, QVBoxLayout, QWidget)

from ..engine.export import FORMATS, ExportError, export, problems
from .families import ERROR_COLOUR

# The name each format goes by in the dialog (engine.export.FORMATS says what it writes)
TITLES = {"keras": "Keras file (.keras)", "keras-code": "Keras script (.py)",
          "pytorch": "PyTorch folder", "onnx": "ONNX model (.onnx)"}
PYTORCH_FOLDER_SUFFIX = "_pytorch"  # seed_cnn -> seed_cnn_pytorch/


def format_problems(model, format: str) -> list[str]:
    """What stops `format` from writing `model` (engine.export.problems), or why the format is
    missing from this installation (engine.export says which package it needs)."""
    try:
        return problems(model, format)
    except ExportError as exc:
        return [str(exc)]


def default_target(folder: Path, stem: str, format: str) -> Path:
    """Where `format` goes by default: <folder>/<stem>.keras, .py, .onnx, or <stem>_pytorch/."""
    suffix = FORMATS[format][2]
    return folder / (f"{stem}{suffix}" if suffix else f"{stem}{PYTORCH_FOLDER_SUFFIX}")


def safe_stem(name: str) -> str:
    """A model name as a file name (no folders, no characters file systems refuse)."""
    stem = re.sub(r"[^\w.-]+", "_", name or "").strip("._")
    return stem or "model"


class ExportDialog(QDialog):
    """Choose a format and a target, see the problems first, export (engine.export.export)."""

    exported = Signal(str, str)  # (format, path written)

    def __init__(self, model, training=None, trained: bool = False, name: str = "model",
                 folder: Path | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("exportDialog")
        self.setWindowTitle("Export model")
        self.model, self.training, self.trained = model, training, trained
        self.dataset = None  # the project's "dataset" section (a DatasetSpec), which the training scripts read
        self.stem = safe_stem(name)
        self.folder = Path(folder) if folder is not None else Path.home()
        self.problems = {format: format_problems(model, format) for format in FORMATS}
        self.last_message: tuple[str, str] | None = None  # (kind, text) of the last message shown

        layout = QVBoxLayout(self)
        layout.setSpacing(10)
        heading = QLabel("Take this model to another framework. Choose a format:")
        heading.setWordWrap(True)
        layout.addWidget(heading)
        self.group = QButtonGroup(self)
        self.buttons: dict[str, QRadioButton] = {}
        self.reasons: dict[str, QLabel] = {}
        for format, (_, description, _) in FORMATS.items():
            layout.addWidget(self._format_row(format, description))
        self.weights_label = QLabel(self._weights_text())
        self.weights_label.setObjectName("exportWeights")
        self.weights_label.setWordWrap(True)
        layout.addWidget(self.weights_label)

        path_row = QHBoxLayout()
        path_row.addWidget(QLabel("Save to:"))
        self.path_edit = QLineEdit()
        self.path_edit.setObjectName("exportPath")
        self.path_edit.setMinimumWidth(self.fontMetrics().horizontalAdvance("m") * 34)
        path_row.addWidget(self.path_edit, 1)
        self.browse_button = QPushButton("Choose…")
        self.browse_button.setAutoDefault(False)  # Enter exports; it never opens the file chooser
        self.browse_button.clicked.connect(self.choose_path)
        path_row.addWidget(self.browse_button)
        layout.addLayout(path_row)

        # Text-only buttons: some styles give Cancel an icon and a custom button none.
        self.button_box = QDialogButtonBox()
        self.export_button = self.button_box.addButton("Export", QDialogButtonBox.ButtonRole.AcceptRole)
        self.button_box.addButton("Cancel", QDialogButtonBox.ButtonRole.RejectRole)
        self.export_button.setObjectName("exportButton")
        self.export_button.setDefault(True)
        self.button_box.accepted.connect(self._on_export_clicked)
        self.button_box.rejected.connect(self.reject)
        layout.addWidget(self.button_box)

        self.group.buttonToggled.connect(self._on_format_toggled)
        first = next((f for f in FORMATS if not self.problems[f]), None)
        if first is not None:
            self.buttons[first].setChecked(True)
        else:
            self.export_button.setEnabled(False)
            self.path_edit.setText(str(default_target(self.folder, self.stem, "keras")))

    # --- building ---------------------------------------------------------------------

    def _format_row(self, format: str, description: str) -> QWidget:
        row = QWidget()
        box = QVBoxLayout(row)
        box.setContentsMargins(0, 0, 0, 0)
        box.setSpacing(2)
        button = QRadioButton(TITLES.get(format, format))
        button.setObjectName(f"format_{format}")
        font = button.font()
        font.setBold(True)
        button.setFont(font)
        self.group.addButton(button)
        self.buttons[format] = button
        box.addWidget(button)
        indent = button.style().pixelMetric(button.style().PixelMetric.PM_ExclusiveIndicatorWidth) + 8
        text = QLabel(description[:1].upper() + description[1:] + ".")
        text.setWordWrap(True)
        text.setContentsMargins(indent, 0, 0, 0)
        box.addWidget(text)
        found = self.problems[format]
        if found:
            button.setEnabled(False)
            text.setEnabled(False)
            reason = QLabel("Cannot export: " + "\n".join(found))  # one line per layer
            reason.setObjectName(f"problems_{format}")
            reason.setWordWrap(True)
            reason.setContentsMargins(indent, 0, 0, 0)
            reason.setStyleSheet(f"color: {ERROR_COLOUR};")
            reason.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            button.setToolTip(reason.text())
            self.reasons[format] = reason
            box.addWidget(reason)
        return row

    def _weights_text(self) -> str:
        if self.trained:
            return "The export holds this project's trained weights."
        return ("This project has no trained weights yet: the export holds the architecture with freshly "
                "initialised weights (train it first to take the trained ones along).")

    # --- state ------------------------------------------------------------------------

    def format(self) -> str | None:
        """The chosen format (None when every format is disabled)."""
        for format, button in self.buttons.items():
            if button.isChecked():
                return format
        return None

    def set_format(self, format: str) -> bool:
        """Choose `format`; False (nothing changes) when it is disabled by its problems."""
        if not self.buttons[format].isEnabled():
            return False
        self.buttons[format].setChecked(True)
        return True

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        chosen = self.format()
        if chosen is not None:
            self.buttons[chosen].setFocus()  # arrows pick a format, Enter exports

    def path(self) -> Path:
        return Path(self.path_edit.text().strip()).expanduser()

    def _on_format_toggled(self, button, checked: bool) -> None:
        if not checked:
            return
        format = next(f for f, b in self.buttons.items() if b is button)
        current = self.path_edit.text().strip()
        if not current:
            self.path_edit.setText(str(default_target(self.folder, self.stem, format)))
            return
        # Keep the folder and name the user chose; give them the new format's ending.
        path = Path(current)
        stem = path.name
        for other in FORMATS:
            suffix = FORMATS[other][2]
            if suffix and stem.lower().endswith(suffix):
                stem = stem[: -len(suffix)]
                break
        else:
            if stem.endswith(PYTORCH_FOLDER_SUFFIX):
                stem = stem[: -len(PYTORCH_FOLDER_SUFFIX)]
        self.path_edit.setText(str(default_target(path.parent, stem or self.stem, format)))

    def choose_path(self) -> None:
        format = self.format() or "keras"
        suffix = FORMATS[format][2]
        if suffix:
            file_filter = f"{TITLES[format]} (*{suffix});;All files (*)"
            title = "Export to file"
        else:
            file_filter = "Folder name (*)"
            title = "Export to folder (a new folder of this name)"
        path, _ = QFileDialog.getSaveFileName(self, title, str(self.path()), file_filter,
                                              options=QFileDialog.Option.DontConfirmOverwrite)
        if path:
            if suffix and not path.lower().endswith(suffix):
                path += suffix
            self.path_edit.setText(path)

    # --- exporting --------------------------------------------------------------------

    def _on_export_clicked(self) -> None:
        format = self.format()
        if format is None:
            return
        path = self.path()
        if path.exists() and not self._confirm_replace(path):
            return
        if self.export_to(format, path) is not None:
            self.accept()

    def _confirm_replace(self, path: Path) -> bool:
        kind = "folder" if path.is_dir() else "file"
        answer = QMessageBox.question(self, "Replace?", f"{path} already exists. Replace this {kind}?",
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
                                      QMessageBox.StandardButton.Cancel)
        return answer == QMessageBox.StandardButton.Yes

    def export_to(self, format: str, path: Path) -> Path | None:
        """Write the model; one message either way. The written path, or None (nothing written)."""
        if not str(path).strip() or path == Path(""):
            return self._fail("Choose where to save the export first.")
        if format == "keras" and path.suffix.lower() != ".keras":
            return self._fail(f"A Keras file must end in .keras (Keras refuses other names): "
                              f"use {path.with_suffix('.keras').name}")
        QGuiApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            written = export(self.model, path, format, training=self.training, dataset=self.dataset)
        except (ValueError, OSError) as exc:  # ExportError/ConfigError are ValueErrors
            return self._fail(_one_line(exc))
        finally:
            QGuiApplication.restoreOverrideCursor()
        what = "trained weights" if self.trained else "freshly initialised weights"
        if format == "pytorch":
            beside = " (a folder: model.py, the weights, train.py and a README)"
        elif format == "keras-code" and self.trained:
            from ..engine.export.keras_code import weights_path

            beside = f", and the weights it loads to {weights_path(written).name} beside it"
        else:
            beside = ""
        text = f"Exported {TITLES[format]} with {what} to {written}{beside}"
        self.last_message = ("information", text)
        QMessageBox.information(self, "Export done", text)
        self.exported.emit(format, str(written))
        return written

    def _fail(self, text: str) -> None:
        self.last_message = ("critical", text)
        QMessageBox.critical(self, "Cannot export", text)
        return None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
