"""Closing the window in the middle of a long batch: it asks, never blocks for the batch,
never destroys the running thread, and closes (keeping or discarding the run) once the
batch ends."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from PySide6.QtWidgets import QMessageBox

# Two wide 5x5 convolutions at batch 1024: one batch takes seconds, far above the close's short wait.
SLOW_MODEL = {"format": "visualcnn.model", "version": 1, "name": "slow", "input_shape": [28, 28, 1],
              "layers": [{"class_name": "Conv2D", "config": {"filters": 96, "kernel_size": 5, "activation": "relu"}},
                         {"class_name": "Conv2D", "config": {"filters": 96, "kernel_size": 5, "activation": "relu"}},
                         {"class_name": "Flatten", "config": {}},
                         {"class_name": "Dense", "config": {"units": 10, "activation": "softmax"}}],
              "training": {"batch_size": 1024, "epochs": 50}}


@pytest.fixture
def slow_window(window, tmp_path):
    path = tmp_path / "slow.json"
    path.write_text(json.dumps(SLOW_MODEL))
    assert window.open_file(path, confirm=False)
    window.train_panel.controls.train_images.setValue(2048)
    return window, path


def answer(monkeypatch, button, asked):
    def question(parent, title, text, *args, **kwargs):
        asked.append((title, text))
        return button
    monkeypatch.setattr(QMessageBox, "question", question)


def start_long_batch(qtbot, window):
    panel = window.train_panel
    with qtbot.waitSignal(panel.run_started, timeout=30_000):
        assert panel.start()
    return panel


def test_discard_hides_at_once_and_closes_when_the_batch_ends(qtbot, slow_window, monkeypatch):
    window, _ = slow_window
    asked = []
    answer(monkeypatch, QMessageBox.StandardButton.Discard, asked)
    panel = start_long_batch(qtbot, window)
    thread = panel.controller._thread
    with qtbot.waitSignal(window.window_closed, timeout=180_000):
        window.close()
        # close() came back while the batch still runs: it did not wait for it
        assert panel.is_running() and thread.isRunning()
        assert not window.isVisible()
        assert len(asked) == 1 and asked[0][0] == "Training is running"
    assert not panel.is_running() and not window.isVisible()
    assert len(asked) == 1  # no second question after the run stopped


def test_cancel_keeps_training(qtbot, slow_window, monkeypatch):
    window, _ = slow_window
    asked = []
    answer(monkeypatch, QMessageBox.StandardButton.Cancel, asked)
    panel = start_long_batch(qtbot, window)
    window.close()
    assert window.isVisible() and panel.is_running() and not panel.controller.stopping
    with qtbot.waitSignal(panel.run_finished, timeout=180_000):
        panel.controller.stop()


def test_keep_saves_the_weights_so_far_then_closes(qtbot, slow_window, monkeypatch):
    window, path = slow_window
    asked = []
    answer(monkeypatch, QMessageBox.StandardButton.Save, asked)
    panel = start_long_batch(qtbot, window)
    with qtbot.waitSignal(window.window_closed, timeout=180_000):
        window.close()
        assert panel.is_running() and window.isVisible()  # says it is stopping, then saves
        assert "Stopping after this batch" in panel.controls.banner.text()
    saved = json.loads(path.read_text())
    assert "weights" in saved and saved["training"]["batch_size"] == 1024
    assert [run["status"] for run in saved["runs"]] == ["stopped"]  # the run history is saved with them
    assert not window.is_modified


def test_the_process_exits_cleanly_when_closed_mid_batch(tmp_path):
    """The real event loop: before, this aborted with 'QThread: Destroyed while thread is still running'."""
    path = tmp_path / "slow.json"
    path.write_text(json.dumps(SLOW_MODEL))
    script = textwrap.dedent(f"""
        import os, sys
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        from PySide6.QtCore import QSettings, QTimer
        from PySide6.QtWidgets import QMessageBox
        from visualcnn.gui.app import create_application
        from visualcnn.gui.main_window import MainWindow
        QMessageBox.question = staticmethod(lambda *a, **k: QMessageBox.StandardButton.Discard)
        app = create_application()
        window = MainWindow(settings=QSettings({str(tmp_path / 's.ini')!r}, QSettings.Format.IniFormat))
        window.show()
        window.open_file({str(path)!r}, confirm=False)
        window.train_panel.controls.train_images.setValue(2048)
        window.train_panel.run_started.connect(lambda: QTimer.singleShot(300, window.close))
        QTimer.singleShot(0, window.train_panel.start)
        code = app.exec()
        print("exited", code, window.train_panel.is_running(), flush=True)
        sys.exit(code)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=150)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "exited 0 False" in result.stdout
    assert "Destroyed while thread" not in result.stderr
