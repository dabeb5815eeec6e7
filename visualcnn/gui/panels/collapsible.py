"""A section that folds away: a header button with an arrow and a one-line summary, and
the content below it, shown only when opened.

Rarely used settings (the Train tab's callbacks) live in one, so the settings a student
needs every time fit a projector's 1024x768 column without scrolling sideways; the header
still says what the folded settings will do ("Callbacks: early stop after 3 flat epochs").

    section = CollapsibleSection("Callbacks", content_widget)
    section.set_summary("off")
    section.set_expanded(True)
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QSizePolicy, QToolButton, QVBoxLayout, QWidget


class CollapsibleSection(QWidget):
    toggled = Signal(bool)  # opened (True) or folded (False) by the user or set_expanded

    def __init__(self, title: str, content: QWidget, expanded: bool = False, parent: QWidget | None = None):
        super().__init__(parent)
        self._title, self._summary = title, ""
        self.header = QToolButton()
        self.header.setObjectName("collapsibleHeader")
        self.header.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.header.setCheckable(True)
        self.header.setAutoRaise(True)
        # Fill the column's width (the whole line is the click target) and never ask for more
        # than the column has: a long summary is cut by the button, not the column widened.
        self.header.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.header.setMinimumWidth(1)
        self.header.toggled.connect(self._on_header_toggled)
        self.content = content
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.header)
        layout.addWidget(content)
        self.header.setChecked(expanded)
        self._show(expanded)

    def is_expanded(self) -> bool:
        return self.header.isChecked()

    def set_expanded(self, expanded: bool) -> None:
        self.header.setChecked(expanded)  # toggled -> _on_header_toggled when it changes

    def set_summary(self, summary: str) -> None:
        """What the folded settings do, after the title ("Callbacks: off")."""
        self._summary = summary
        self._show(self.is_expanded())

    def title_text(self) -> str:
        return self.header.text()

    def _on_header_toggled(self, expanded: bool) -> None:
        self._show(expanded)
        self.toggled.emit(expanded)

    def _show(self, expanded: bool) -> None:
        self.header.setArrowType(Qt.ArrowType.DownArrow if expanded else Qt.ArrowType.RightArrow)
        text = f"{self._title}: {self._summary}" if self._summary else self._title
        self.header.setText(text)
        self.header.setToolTip(f"{text}\n{'Click to fold these settings away' if expanded else 'Click to show them'}")
        self.content.setVisible(expanded)


__all__ = ["CollapsibleSection"]
