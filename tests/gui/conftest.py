"""Fixtures for the builder window tests: offscreen Qt, throw-away settings, no modal dialogs."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PRESETS = REPO / "resources" / "presets"


@pytest.fixture(autouse=True)
def no_background_warmup(monkeypatch):
    """The window's background kernel compiling (gui/engine_warmup.py) is off unless a test
    turns it on: a compile still running after one test would disturb the next one's
    measurements (None's refcount, memory over runs)."""
    monkeypatch.setenv("VISUALCNN_WARMUP", "0")


@pytest.fixture
def seed_path() -> Path:
    return PRESETS / "seed_cnn.json"


@pytest.fixture
def doc(seed_path):
    """The seed CNN as a document (QtCore only)."""
    from visualcnn.gui.document import PipelineDocument

    document = PipelineDocument()
    document.load_text(seed_path.read_text())
    return document


@pytest.fixture
def stack():
    from PySide6.QtGui import QUndoStack

    return QUndoStack()


@pytest.fixture
def dialogs(monkeypatch):
    """Record message boxes instead of blocking on them; 'question' answers Discard."""
    from PySide6.QtWidgets import QMessageBox

    shown: list[tuple[str, str, str]] = []

    def critical(parent, title, text, *args, **kwargs):
        shown.append(("critical", title, text))
        return QMessageBox.StandardButton.Ok

    def question(parent, title, text, *args, **kwargs):
        shown.append(("question", title, text))
        return QMessageBox.StandardButton.Discard

    monkeypatch.setattr(QMessageBox, "critical", critical)
    monkeypatch.setattr(QMessageBox, "question", question)
    return shown


@pytest.fixture
def window(qtbot, tmp_path, dialogs):
    from PySide6.QtCore import QSettings

    from visualcnn.gui.app import create_application
    from visualcnn.gui.main_window import MainWindow

    create_application()
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    win = MainWindow(settings=settings)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    yield win
    win.undo_stack.setClean()


@pytest.fixture
def seed_window(window, seed_path):
    assert window.load_preset(seed_path)
    return window
