"""The first-launch welcome: where to start, for someone who has never opened the window.

Shown once per user (QSettings "welcome/shown"), by the `visualcnn` command after the window
appears (never by MainWindow itself, so tests and screenshots see it only when they ask);
Help ▸ Welcome… shows it again. "Start lesson 1" opens the first bundled lesson in the
Lessons panel (gui/lessons_panel.py).
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QPushButton, QVBoxLayout

SHOWN_KEY = "welcome/shown"

WELCOME_TEXT = """
<h2>Welcome to VisualCNN</h2>
<p>Build a convolutional network from layers, train it on handwritten digits and look inside it:
every shape, parameter count and receptive field is worked out as you edit.</p>
<p><b>New here?</b> Start with lesson 1. Each lesson loads a small network and guides you one step at
a time: you predict what a change will do before you see it, make changes that are checked as you go,
and train to see what happens. A hint is always one click away, and your progress is kept.</p>
<p>Or look around on your own: the <b>Build</b> tab has the network, <b>Train</b> trains it,
<b>Draw</b> lets you write a digit for it to read. Help ▸ Lessons brings the lessons back.</p>
"""


class WelcomeDialog(QDialog):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("welcomeDialog")
        self.setWindowTitle("Welcome to VisualCNN")
        text = QLabel(WELCOME_TEXT)
        text.setWordWrap(True)
        text.setTextFormat(Qt.TextFormat.RichText)
        text.setObjectName("welcomeText")
        self.start_button = QPushButton("Start lesson 1")
        self.start_button.setObjectName("welcomeStart")
        self.start_button.setDefault(True)
        self.lessons_button = QPushButton("All lessons")
        self.lessons_button.setObjectName("welcomeLessons")
        buttons = QDialogButtonBox()
        buttons.addButton(self.start_button, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(self.lessons_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.close_button = buttons.addButton("Explore on my own", QDialogButtonBox.ButtonRole.RejectRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 18, 24, 18)
        layout.addWidget(text)
        layout.addWidget(buttons)
        em = self.fontMetrics().horizontalAdvance("m")
        self.setMinimumWidth(min(44 * em, 640))


def show_welcome(window) -> WelcomeDialog:
    """Show the welcome over `window` (a MainWindow with a Lessons panel); not modal: the window
    stays usable and closes normally behind it."""
    dialog = WelcomeDialog(window)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    panel = window.lessons

    def start_first() -> None:
        paths = panel.lesson_paths()
        if paths:
            panel.open_lesson(paths[0])
        else:
            panel.show_list()
            panel.show_dock()

    def show_all() -> None:
        dialog.close()
        panel.show_list()
        panel.show_dock()

    paths = panel.lesson_paths()
    if paths:
        try:
            from ..engine.lessons import load_lesson

            dialog.start_button.setText(f"Start lesson 1: {load_lesson(paths[0]).title}")
        except (ValueError, OSError):  # a broken first lesson: the panel says why when it is opened
            pass
    dialog.accepted.connect(start_first)
    dialog.lessons_button.clicked.connect(show_all)
    window.settings.setValue(SHOWN_KEY, True)
    dialog.show()
    dialog.raise_()
    return dialog


def maybe_show_welcome(window) -> WelcomeDialog | None:
    """The welcome on this user's first launch only."""
    value = window.settings.value(SHOWN_KEY, False)
    if value in (True, "true", "1", 1):
        return None
    return show_welcome(window)


__all__ = ["WelcomeDialog", "show_welcome", "maybe_show_welcome", "SHOWN_KEY"]
