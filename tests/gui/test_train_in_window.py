"""Training through the real window: Train locks the pipeline, the weights join the project,
the Draw tab follows, and closing the window mid-run exits cleanly."""

from __future__ import annotations


def small_run(window, epochs=1):
    controls = window.train_panel.controls
    controls.train_images.setValue(640)
    controls.batch_size.setValue(64)
    controls.epochs.setValue(epochs)


def test_train_button_locks_the_pipeline_and_the_weights_join_the_project(qtbot, seed_window):
    small_run(seed_window)
    assert seed_window.document.trained_weights is None
    with qtbot.waitSignal(seed_window.train_panel.run_finished, timeout=120_000):
        seed_window.train_button.click()
        assert seed_window.tabs.currentWidget() is seed_window.train_page
        assert seed_window.locked and not seed_window.lock_banner.isHidden()
        assert not seed_window.pipeline.isEnabled() and not seed_window.undo_action.isEnabled()
        assert not seed_window.train_button.isEnabled()
    assert not seed_window.locked and seed_window.lock_banner.isHidden() and seed_window.pipeline.isEnabled()
    assert seed_window.document.trained_weights is not None and seed_window.is_modified
    assert seed_window.draw_panel.has_model()
    assert seed_window.document.training.batch_size == 64
    # the run is also recorded in the project's run history (gui/run_recording.py)
    assert seed_window.unsaved_changes_text() == ("The trained weights, the saved training state and the run history "
                                                  "have unsaved changes.")
    seed_window.undo_stack.undo()  # "Train network" is an undoable edit
    assert seed_window.document.trained_weights is None


def test_pinned_drawing_becomes_the_training_probe(qtbot, seed_window):
    seed_window.draw_panel.canvas.add_stroke([(0.5, 0.2), (0.5, 0.8)])
    seed_window.draw_panel._pin.click()
    probe = seed_window.train_panel.probe_picker.probe()
    assert probe is not None and (probe == seed_window.draw_panel._digit).all()


def test_closing_the_window_during_training_stops_the_run(qtbot, seed_window):
    small_run(seed_window, epochs=1000)
    with qtbot.waitSignal(seed_window.train_panel.controller.progressed, timeout=60_000):
        seed_window.train_button.click()
    assert seed_window.train_panel.is_running()
    seed_window.undo_stack.setClean()
    seed_window.close()
    assert not seed_window.train_panel.is_running()


def test_a_learning_rate_change_mid_run_is_saved_but_undo_stays_locked(qtbot, seed_window):
    small_run(seed_window, epochs=1000)
    controls = seed_window.train_panel.controls
    with qtbot.waitSignal(seed_window.train_panel.controller.progressed, timeout=60_000):
        seed_window.train_button.click()
    controls.learning_rate.setValue(0.004)
    assert seed_window.document.training.learning_rate == 0.004 and seed_window.is_modified
    assert not seed_window.undo_action.isEnabled(), "undo must stay off while the pipeline is locked"
    with qtbot.waitSignal(seed_window.train_panel.run_finished, timeout=60_000):
        controls.stop_button.click()
    assert seed_window.undo_action.isEnabled()
