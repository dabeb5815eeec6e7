"""The palette: every layer type, grouped by family, to drag into the pipeline or double-click."""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QEvent, QMimeData, QSize, Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QAbstractItemView, QTreeWidget, QTreeWidgetItem

from ..engine.layers import LAYER_CLASSES
from .families import FAMILY_ORDER, FAMILY_TITLES, family_colour, family_icon
from .mime import MIME_TYPE, LayerPayload, encode_payload

# What a new block starts with: the required arguments filled with values from the
# Keras MNIST examples, so a freshly dropped block already works.
STARTER_CONFIGS: dict[str, dict] = {
    "Conv2D": {"filters": 32, "kernel_size": [3, 3], "activation": "relu"},
    "DepthwiseConv2D": {"kernel_size": [3, 3], "activation": "relu"},
    "SeparableConv2D": {"filters": 32, "kernel_size": [3, 3], "activation": "relu"},
    "Conv2DTranspose": {"filters": 32, "kernel_size": [3, 3], "activation": "relu"},
    "MaxPooling2D": {"pool_size": [2, 2]},
    "AveragePooling2D": {"pool_size": [2, 2]},
    "GlobalAveragePooling2D": {},
    "GlobalMaxPooling2D": {},
    "Flatten": {},
    "Dense": {"units": 64, "activation": "relu"},
    "Activation": {"activation": "relu"},
    "Dropout": {"rate": 0.25},
    "BatchNormalization": {},
}

CLASS_ROLE = Qt.ItemDataRole.UserRole + 1


def starter_config(class_name: str) -> dict:
    return dict(STARTER_CONFIGS.get(class_name, {}))


def palette_mime_data(class_name: str) -> QMimeData:
    mime = QMimeData()
    mime.setData(MIME_TYPE, QByteArray(encode_payload(LayerPayload("palette", class_name,
                                                                    starter_config(class_name)))))
    return mime


class PaletteWidget(QTreeWidget):
    """Layer types under family headings; drag one out, or double-click to insert it."""

    layer_activated = Signal(str)  # class name, on double-click or Enter

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("palette")
        self.setHeaderHidden(True)
        self.setRootIsDecorated(False)
        self.setIndentation(8)
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setUniformRowHeights(False)
        self._fit_icons()
        heading_font = QFont()
        heading_font.setBold(True)  # bold only: the size follows the palette's (zoomed) font
        for family in FAMILY_ORDER:
            heading = QTreeWidgetItem(self, [FAMILY_TITLES[family]])
            heading.setFlags(Qt.ItemFlag.ItemIsEnabled)
            heading.setFont(0, heading_font)
            heading.setForeground(0, family_colour(family))
            for class_name, cls in LAYER_CLASSES.items():
                if cls.family != family:
                    continue
                item = QTreeWidgetItem(heading, [class_name])
                item.setIcon(0, family_icon(family))
                item.setData(0, CLASS_ROLE, class_name)
                item.setToolTip(0, f"<b>{class_name}</b><br>{cls.explanation}<br><i>Drag into the pipeline, "
                                   "or double-click to add after the selected block.</i>")
                item.setStatusTip(0, cls.explanation)
                item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
                              | Qt.ItemFlag.ItemIsDragEnabled)
            heading.setExpanded(True)
        # Double-click and Enter only: itemActivated also fires on a single click on some desktops.
        self.itemDoubleClicked.connect(self._on_item_activated)

    def _fit_icons(self) -> None:
        size = int(self.fontMetrics().height() * 1.5)
        self.setIconSize(QSize(size, size))

    def changeEvent(self, event):  # noqa: N802 - Qt override
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:  # View ▸ Zoom
            self._fit_icons()

    def class_names(self) -> list[str]:
        names = []
        for i in range(self.topLevelItemCount()):
            heading = self.topLevelItem(i)
            names += [heading.child(j).data(0, CLASS_ROLE) for j in range(heading.childCount())]
        return names

    def mimeTypes(self):
        return [MIME_TYPE]

    def mimeData(self, items):
        names = [item.data(0, CLASS_ROLE) for item in items if item.data(0, CLASS_ROLE)]
        return palette_mime_data(names[0]) if names else QMimeData()

    def keyPressEvent(self, event):
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.currentItem() is not None:
            self._on_item_activated(self.currentItem())
            return
        super().keyPressEvent(event)

    def _on_item_activated(self, item, _column=0):
        class_name = item.data(0, CLASS_ROLE)
        if class_name:
            self.layer_activated.emit(class_name)
