"""The Train tab's dataset choice: MNIST, Fashion-MNIST or an image folder of one's own.

The choice is the project's "dataset" section (engine/dataset_spec.py checks it): the
picker only shows a spec and emits `spec_changed(spec)` when the user picks another;
the Train tab stores it in the document and loads it off the GUI thread, then shows
here what the engine read and skipped (set_report).

    picker = DatasetPicker()
    picker.spec_changed.connect(tab.on_dataset_spec)   # {"source": "folder", "path": ...}
    picker.set_spec(document.section("dataset"))       # None: MNIST, the default
    picker.set_report("2,000 images in 10 classes ...", "ok")
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFileDialog, QHBoxLayout, QLabel, QPushButton, QVBoxLayout,
                               QWidget)

from ..engine.dataset_spec import DEFAULT_TEST_SPLIT
from ..engine.datasets import fashion_mnist_available
from ..engine.image_folder import DEFAULT_INTERPOLATION, INTERPOLATIONS

MNIST_SPEC = {"source": "mnist"}
SOURCES = (("mnist", "MNIST digits (bundled)"), ("fashion_mnist", "Fashion-MNIST"), ("folder", "Image folder…"))
REPORT_STYLES = {
    "ok": "color: #14532d;",
    "info": "color: #0b3d6b;",
    "error": "color: #8a0010; font-weight: bold;",
}


def spec_source(spec: dict | None) -> str:
    return (spec or MNIST_SPEC).get("source", "mnist")


def is_digit_dataset(spec: dict | None) -> bool:
    """MNIST's handwritten digits: the only data the Draw tab's canvas makes sense for."""
    return spec_source(spec) == "mnist"


def spec_title(spec: dict | None) -> str:
    """A short name for messages: "MNIST", "Fashion-MNIST", "the image folder 'shapes'"."""
    source = spec_source(spec)
    if source == "folder":
        return f"the image folder '{Path(spec.get('path', '')).name}'"
    return {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}.get(source, source)


class DatasetPicker(QWidget):
    """A choice of source, the folder (for an image folder), a Browse button and the report."""

    spec_changed = Signal(object)  # the spec dict the user picked
    browse_requested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._spec: dict = dict(MNIST_SPEC)
        self.source = QComboBox()
        for key, label in SOURCES:
            self.source.addItem(label, key)
        self.fashion_installed = fashion_mnist_available()
        if not self.fashion_installed:
            self.source.setItemData(1, "Not installed: choose a folder holding its four files "
                                       "(train-images-idx3-ubyte.gz ...), or install the Debian package "
                                       "dataset-fashion-mnist", Qt.ItemDataRole.ToolTipRole)
            self.source.setItemText(1, "Fashion-MNIST (its folder…)")
        self.source.setItemData(2, "Your own images: a folder with one sub-folder per class (PNG, JPEG or BMP), "
                                   "as Keras's image_dataset_from_directory reads them",
                                Qt.ItemDataRole.ToolTipRole)
        self.source.activated.connect(self._on_source_activated)
        self.change_folder = QPushButton("Change…")
        self.change_folder.setToolTip("Choose another image folder")
        self.change_folder.clicked.connect(self.choose_folder_dialog)
        self.browse = QPushButton("Browse…")
        self.browse.setObjectName("datasetBrowse")
        self.browse.setToolTip("See the images of every class, with their counts")
        self.browse.clicked.connect(self.browse_requested)
        # a folder's own settings (engine/dataset_spec.py): how images are resized, the share held out for testing
        self.interpolation = QComboBox()
        for name in INTERPOLATIONS:
            self.interpolation.addItem(name, name)
        self.interpolation.setToolTip("How each image is resized to the model's input (Keras's interpolation; "
                                      "bilinear is its default, nearest keeps hard pixel edges, area averages)")
        self.interpolation.activated.connect(lambda _i: self._set_folder_setting(
            "interpolation", self.interpolation.currentData(), DEFAULT_INTERPOLATION))
        self.test_split = QDoubleSpinBox()
        self.test_split.setRange(0.05, 0.9)
        self.test_split.setSingleStep(0.05)
        self.test_split.setDecimals(2)
        self.test_split.setKeyboardTracking(False)
        self.test_split.setToolTip("The share of each class's images held out as test images (the confusion matrix "
                                   "and test accuracy are measured on them; a folder with train/ and test/ "
                                   "sub-folders uses those instead)")
        self.test_split.valueChanged.connect(lambda v: self._set_folder_setting("test_split", round(float(v), 4),
                                                                                DEFAULT_TEST_SPLIT))
        self.settings_row = QWidget()
        settings = QHBoxLayout(self.settings_row)
        settings.setContentsMargins(0, 0, 0, 0)
        settings.addWidget(QLabel("resize"))
        settings.addWidget(self.interpolation, 1)
        settings.addWidget(QLabel("test"))
        settings.addWidget(self.test_split)
        self.report = QLabel("")
        self.report.setObjectName("datasetReport")
        self.report.setWordWrap(True)
        self.report.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        # the settings column is narrow: the choice gets a row of its own, the buttons the next
        self.source.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.source.setMinimumContentsLength(12)
        folder_row = QHBoxLayout()
        folder_row.setContentsMargins(0, 0, 0, 0)
        folder_row.addStretch(1)
        folder_row.addWidget(self.change_folder)
        folder_row.addWidget(self.browse)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.source)
        layout.addLayout(folder_row)
        layout.addWidget(self.settings_row)
        layout.addWidget(self.report)
        self._show_spec()

    # --- the spec -------------------------------------------------------------------

    def spec(self) -> dict:
        return dict(self._spec)

    def source_key(self) -> str:
        return spec_source(self._spec)

    def label(self) -> str:
        return spec_title(self._spec)

    def currentText(self) -> str:  # noqa: N802 - what the combo box it replaced answered
        return self.source.currentText()

    def set_spec(self, spec: dict | None) -> None:
        """Show this spec (None: MNIST); emits nothing (it came from the document)."""
        spec = dict(spec or MNIST_SPEC)
        if spec != self._spec:
            self._spec = spec
            self.report.clear()
        self._show_spec()

    def choose_folder(self, path) -> None:
        """Pick this image folder (what the folder dialog does; tests call it directly)."""
        spec = {"source": "folder", "path": str(Path(path))}
        for key in ("test_split", "interpolation", "seed"):  # settings kept across folders
            if key in self._spec:
                spec[key] = self._spec[key]
        self._pick(spec)

    def choose_folder_dialog(self) -> bool:
        """Change…: another folder for the current source (an image folder or Fashion-MNIST's files)."""
        source = spec_source(self._spec)
        path = self._ask_folder(source)
        if path:
            self._pick_folder(source, path)
        return bool(path)

    def choose_fashion_folder(self, path) -> None:
        """Fashion-MNIST from a folder holding its four IDX files (tests call it directly)."""
        self._pick({"source": "fashion_mnist", "path": str(Path(path))})

    def set_report(self, text: str, kind: str = "ok") -> None:
        """What the engine read and skipped (or why it could not), under the choice."""
        self.report.setStyleSheet(REPORT_STYLES[kind])
        self.report.setText(text)

    # --- internals --------------------------------------------------------------------

    def _pick(self, spec: dict) -> None:
        if spec == self._spec:
            self._show_spec()
            return
        self._spec = spec
        self.report.setText("Reading…" if spec_source(spec) == "folder" else "")
        self.report.setStyleSheet(REPORT_STYLES["info"])
        self._show_spec()
        self.spec_changed.emit(dict(spec))

    def _show_spec(self) -> None:
        source = spec_source(self._spec)
        index = max(0, self.source.findData(source))
        if self.source.currentIndex() != index:
            with QSignalBlocker(self.source):
                self.source.setCurrentIndex(index)
        path = self._spec.get("path", "")
        folder = source == "folder" or bool(path)
        # the folder's name in the choice itself ("Image folder: shapes"): the column is narrow
        self.source.setItemText(2, f"Image folder: {Path(path).name}" if source == "folder" else SOURCES[2][1])
        if not self.fashion_installed:
            self.source.setItemText(1, f"Fashion-MNIST: {Path(path).name}" if source == "fashion_mnist" and path
                                    else "Fashion-MNIST (its folder…)")
        self.source.setToolTip(path)
        self.change_folder.setVisible(folder)
        self.settings_row.setVisible(source == "folder")
        with QSignalBlocker(self.interpolation), QSignalBlocker(self.test_split):
            self.interpolation.setCurrentIndex(max(0, self.interpolation.findData(
                self._spec.get("interpolation", DEFAULT_INTERPOLATION))))
            self.test_split.setValue(float(self._spec.get("test_split", DEFAULT_TEST_SPLIT)))

    def _set_folder_setting(self, key: str, value, default) -> None:
        spec = dict(self._spec)
        if value == default:
            spec.pop(key, None)  # the section keeps only what differs from the defaults
        else:
            spec[key] = value
        self._pick(spec)

    def _ask_folder(self, source: str) -> str:
        title = ("Image folder: one sub-folder per class" if source == "folder"
                 else "Folder with Fashion-MNIST's four .gz files")
        return QFileDialog.getExistingDirectory(self, title, self._spec.get("path") or str(Path.home()))

    def _pick_folder(self, source: str, path) -> None:
        if source == "folder":
            self.choose_folder(path)
        else:
            self.choose_fashion_folder(path)

    def _on_source_activated(self, index: int) -> None:
        source = self.source.itemData(index)
        if source == "folder" or (source == "fashion_mnist" and not self.fashion_installed):
            if spec_source(self._spec) != source:
                path = self._ask_folder(source)
                if path:
                    self._pick_folder(source, path)
            self._show_spec()  # cancelled: back to what was chosen
            return
        self._pick({"source": source})
