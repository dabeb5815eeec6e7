"""Ctrl+Z / Ctrl+Shift+Z reach the window's undo stack wherever the focus is.

A focused line edit or spin box claims the undo keys for its own text undo (it accepts
the ShortcutOverride event), so the Edit menu's Undo never fired while an inspector
field had focus. Every field edit is already an undoable command, so inside the window
the keys go to the undo stack. Only the focused widget gets this filter (installed as
focus moves), not every event of the application.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject
from PySide6.QtGui import QKeyEvent, QKeySequence
from PySide6.QtWidgets import QApplication, QWidget

UNDO_REDO_KEYS = (QKeySequence.StandardKey.Undo, QKeySequence.StandardKey.Redo)
EXTRA_REDO = (QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y"))


def is_undo_or_redo(event: QKeyEvent) -> bool:
    if any(event.matches(key) for key in UNDO_REDO_KEYS):
        return True
    pressed = QKeySequence(event.keyCombination())
    return any(pressed.matches(key) == QKeySequence.SequenceMatch.ExactMatch for key in EXTRA_REDO)


class UndoShortcutRouter(QObject):
    """Lets the window's undo / redo shortcuts win over the focused field's own."""

    def __init__(self, window: QWidget):
        super().__init__(window)
        self._window = window
        self._watched: QWidget | None = None
        QApplication.instance().focusChanged.connect(self._on_app_focus_changed)

    def _on_app_focus_changed(self, _old, new) -> None:
        watched, self._watched = self._watched, None
        if watched is not None:
            try:
                watched.removeEventFilter(self)
            except RuntimeError:  # already deleted (an inspector field replaced on reselection)
                pass
        if new is not None and new.window() is self._window:
            new.installEventFilter(self)
            self._watched = new

    def eventFilter(self, obj, event) -> bool:
        if event.type() == QEvent.Type.ShortcutOverride and is_undo_or_redo(event):
            event.ignore()  # not claimed by the field: the window's shortcut fires
            return True
        return False
