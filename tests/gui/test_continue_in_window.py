"""Continue training through the real window, across saving and reopening the project:
the same weights as one uninterrupted run (the seed CNN has Dropout; Adam)."""

from __future__ import annotations

import json

import numpy as np


def settings(window, epochs):
    controls = window.train_panel.controls
    controls.train_images.setValue(320)
    controls.batch_size.setValue(64)
    controls.epochs.setValue(epochs)


def run(qtbot, window, start):
    with qtbot.waitSignal(window.train_panel.run_finished, timeout=120_000) as finished:
        assert start()
    return finished.args[0]


def test_continue_after_reopening_the_project_equals_one_longer_run(qtbot, seed_window, tmp_path):
    window = seed_window
    settings(window, 2)
    straight = [w.copy() for w in run(qtbot, window, window.train_panel.start).get_weights()]
    settings(window, 1)
    run(qtbot, window, window.train_panel.start)
    path = tmp_path / "project.json"
    assert window.save_to(path)
    saved = json.loads(path.read_text())
    assert saved["resume"]["epochs_done"] == 1 and saved["resume"]["images"] == 320
    assert window.open_file(str(path), confirm=False)
    panel = window.train_panel
    panel.controls.train_images.setValue(60000)  # the tab's own box: Continue takes the run's count
    assert panel.controls.callbacks.continue_button.isEnabled()
    continued = run(qtbot, window, panel.continue_training)
    assert all(np.array_equal(a, b) for a, b in zip(continued.get_weights(), straight))
    assert window.document.section("resume")["epochs_done"] == 2
