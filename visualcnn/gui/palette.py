"""The palette: every layer type, grouped by family, to drag into the pipeline or double-click."""

from __future__ import annotations

import copy

from PySide6.QtCore import QByteArray, QEvent, QMimeData, QSize, Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QAbstractItemView, QTreeWidget, QTreeWidgetItem

from ..engine.layers import LAYER_CLASSES, Layer
from .families import FAMILY_ORDER, OTHER_TITLE, family_colour, family_icon, family_title
from .mime import MIME_TYPE, LayerPayload, encode_payload
from .glossary_tips import explained_html, family_tip

CLASS_ROLE = Qt.ItemDataRole.UserRole + 1


def starter_config(class_name: str) -> dict:
    """What a freshly dropped block holds: the class's own starter config (a fresh copy)."""
    cls = LAYER_CLASSES.get(class_name)
    return copy.deepcopy(cls.starter_config) if cls is not None else {}


def palette_groups() -> list[tuple[str, str, list[type[Layer]]]]:
    """(title, family, classes) per palette heading: every registered class with in_palette,
    grouped by family in FAMILY_ORDER; families the GUI has no title for share one "Other"
    heading (grey) at the end, so a new family needs no GUI change to appear."""
    by_family: dict[str, list] = {}
    for cls in LAYER_CLASSES.values():
        if cls.in_palette:
            by_family.setdefault(cls.family if cls.family in FAMILY_ORDER else OTHER_TITLE, []).append(cls)
    groups = [(family_title(f), f, by_family[f]) for f in FAMILY_ORDER if f in by_family]
    if OTHER_TITLE in by_family:
        groups.append((OTHER_TITLE, OTHER_TITLE, by_family[OTHER_TITLE]))
    return groups


def how_to_add(cls: type[Layer]) -> str:
    """The palette tooltip's hint; a merge layer joins branches, so it says how to give it inputs."""
    if cls.merge:
        return ("Drop it onto an arrow to join that branch, then drag from another block's output "
                "to it for each further input.")
    return "Drag into the pipeline, or double-click to add after the selected block."


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
        for title, family, classes in palette_groups():
            heading = QTreeWidgetItem(self, [title])
            heading.setFlags(Qt.ItemFlag.ItemIsEnabled)
            heading.setFont(0, heading_font)
            heading.setForeground(0, family_colour(family))
            heading.setToolTip(0, family_tip(family))  # what the group's word means (glossary)
            for cls in classes:
                class_name = cls.class_name
                item = QTreeWidgetItem(heading, [class_name])
                item.setIcon(0, family_icon(cls.family))
                item.setData(0, CLASS_ROLE, class_name)
                tip = f"<b>{class_name}</b><br>{cls.explanation}<br><i>{how_to_add(cls)}</i>"
                item.setToolTip(0, explained_html(tip, class_name))  # + the glossary's entry for its type
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
