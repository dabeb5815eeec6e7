"""Help ▸ Glossary: every word of the engine's glossary (engine/glossary.py, resources/
glossary.toml) on one page, with a filter box; and the Markdown list of a lesson's new words
that the Lessons panel shows when a lesson is complete. The words are the engine's: nothing
is explained here that the glossary does not say.
"""

from __future__ import annotations

import html

from PySide6.QtWidgets import QDialog, QLineEdit, QTextBrowser, QVBoxLayout

from ..engine import glossary


def glossary_html(filter_text: str = "") -> str:
    """Every term (name in bold, then its explanation) whose name or text has filter_text."""
    needle = filter_text.strip().lower()
    rows = []
    for name in glossary.terms():
        text = glossary.term(name)
        if needle and needle not in name.lower() and needle not in text.lower():
            continue
        rows.append(f"<p><b>{html.escape(name)}</b>: {html.escape(text)}</p>")
    return "".join(rows) or f"<p>No word matches {html.escape(filter_text)!s}.</p>"


def lesson_words_markdown(names) -> str:
    """"- **stride**: ..." for each of a lesson's glossary words the glossary knows."""
    lines = []
    for name in names:
        try:
            lines.append(f"- **{name}**: {glossary.term(name)}")
        except KeyError:  # `lesson check` names an unknown word; the list just leaves it out
            continue
    return "\n".join(lines)


class GlossaryDialog(QDialog):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("glossaryDialog")
        self.setWindowTitle("Glossary — VisualCNN")
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Find a word (stride, padding, epoch…)")
        self.filter.setClearButtonEnabled(True)
        self.text = QTextBrowser()
        self.text.setObjectName("glossaryText")
        self.filter.textChanged.connect(lambda value: self.text.setHtml(glossary_html(value)))
        layout = QVBoxLayout(self)
        layout.addWidget(self.filter)
        layout.addWidget(self.text, 1)
        self.text.setHtml(glossary_html())
        em = self.fontMetrics().horizontalAdvance("m")
        self.resize(46 * em, 40 * self.fontMetrics().height())


def open_glossary(window) -> GlossaryDialog:
    """One glossary window per main window, raised when already open."""
    dialog = getattr(window, "_glossary_dialog", None)
    if dialog is None:
        dialog = GlossaryDialog(window)
        window._glossary_dialog = dialog
    dialog.show()
    dialog.raise_()
    dialog.activateWindow()
    return dialog


__all__ = ["GlossaryDialog", "open_glossary", "glossary_html", "lesson_words_markdown"]
