"""The Train tab end to end on a small slice of MNIST (offscreen; waitSignal, never sleep)."""

from __future__ import annotations

import numpy as np
import pytest

from visualcnn.engine import Sequential
from visualcnn.engine import layers as L
from visualcnn.engine.training_config import TrainingConfig

pytest.importorskip("pytestqt")


def small_cnn() -> Sequential:
    return Sequential([L.Input(shape=(28, 28, 1)), L.Conv2D(4, 3, activation="relu"), L.MaxPooling2D(),
                       L.Conv2D(6, 3, activation="relu"), L.Flatten(), L.Dense(10, activation="softmax")])


def linear_cnn() -> Sequential:
    """No ReLU anywhere: with SGD at a huge learning rate the weights blow up to NaN in a few batches."""
    return Sequential([L.Input(shape=(28, 28, 1)), L.Conv2D(4, 3), L.Flatten(), L.Dense(32),
                       L.Dense(10, activation="softmax")])


@pytest.fixture
def tab(qtbot):
    from visualcnn.gui.app import create_application
    from visualcnn.gui.train_tab import TrainTabWidget

    create_application()
    widget = TrainTabWidget()
    qtbot.addWidget(widget)
    widget.set_model_source(small_cnn)
    widget.controls.train_images.setValue(640)
    widget.controls.batch_size.setValue(64)
    widget.controls.epochs.setValue(1)
    widget.resize(1200, 800)
    widget.show()
    qtbot.waitExposed(widget)
    yield widget
    widget.shutdown()
    assert not widget.is_running()


def long_run(tab):
    """Enough epochs that the run cannot end on its own before the test stops it."""
    tab.controls.epochs.setValue(1000)


def test_completed_run_updates_every_panel(qtbot, tab):
    tab.controls.validation_split.setValue(0.2)
    tab.controls.epochs.setValue(2)
    with qtbot.waitSignal(tab.run_started, timeout=5000):
        assert tab.start()
    assert tab.is_running()
    assert not tab.controls.start_button.isEnabled() and not tab.controls.batch_size.isEnabled()
    assert tab.controls.learning_rate.isEnabled()  # the one setting that can change mid-run
    with qtbot.waitSignal(tab.run_finished, timeout=60000) as finished:
        pass
    model = finished.args[0]
    assert isinstance(model, Sequential) and model.built
    assert not tab.is_running() and tab.controls.start_button.isEnabled()
    # curves: per-batch (smoothed) points over both epochs, epoch means and validation per epoch
    x, y = tab.curves.series("smooth_loss")
    assert x.size >= 2 and x.max() == pytest.approx(2.0) and np.isfinite(y).all()
    assert tab.curves.series("epoch_loss")[0].tolist() == [0.5, 1.5]
    assert tab.curves.series("val_accuracy")[0].tolist() == [1.0, 2.0]
    # filters: the first conv layer's 4 kernels of 3x3, equal to the trained weights
    assert tab.filters.layer_combo.count() == 2
    np.testing.assert_allclose(tab.filters.shown(), model.layers[0].weights[0][:, :, 0, :])
    # feature maps: every conv and pool layer, with its output shape
    maps = tab.feature_maps.layers()
    assert [(m.name, m.maps.shape) for m in maps] == [
        (model.layers[0].name, (26, 26, 4)), (model.layers[1].name, (13, 13, 4)), (model.layers[2].name, (11, 11, 6))]
    assert maps[1].field_size == (4, 4)
    # results: accuracy, a confusion matrix over the whole test set, a clickable cell
    results = tab.results
    assert results.matrix.matrix.sum() == 10000
    assert "Test accuracy" in results.summary.text()
    assert tab.lower_tabs.currentWidget() is results
    true_class, predicted = np.unravel_index(np.argmax(results.matrix.matrix), (10, 10))
    results.show_cell(int(true_class), int(predicted))
    assert results.gallery.count() == min(int(results.matrix.matrix[true_class, predicted]), 300)
    assert "%" in results.gallery.item(0).text()  # top-3 probabilities under each digit
    qtbot.waitUntil(lambda: results.gallery.count() > 0)
    results.show_mistakes()
    wrong = int(results.matrix.matrix.sum() - np.trace(results.matrix.matrix))
    assert results.gallery.count() == min(wrong, 300)


def test_pause_resume_stop(qtbot, tab):
    long_run(tab)
    with qtbot.waitSignal(tab.controller.progressed, timeout=10000):
        tab.start()
    worker = tab.controller.worker
    # the worker itself says when its loop is blocked between two batches
    with qtbot.waitSignal(tab.controller.paused, timeout=10000):
        tab.controls.pause_button.click()
    assert tab.controller.is_paused and tab.controls.pause_button.text() == "Resume"
    steps_while_paused = worker._step
    assert tab.is_running()
    with qtbot.waitSignal(tab.controller.resumed, timeout=10000):
        tab.controls.pause_button.click()
    assert not tab.controller.is_paused and tab.controls.pause_button.text() == "Pause"
    with qtbot.waitSignal(tab.controller.progressed, timeout=10000):
        pass
    assert worker._step > steps_while_paused
    n_curve = tab.curves.series("batch_loss")[0].size
    with qtbot.waitSignal(tab.run_finished, timeout=10000) as finished:
        tab.controls.stop_button.click()
    assert finished.args[0] is tab._model and not tab.is_running()
    assert "Stopped at epoch" in tab.controls.banner.text()
    assert tab.curves.series("batch_loss")[0].size >= n_curve  # curves survive pause / resume / stop
    assert tab.results.matrix.matrix.sum() == 0  # a stopped run is not evaluated


def test_learning_rate_change_takes_effect_mid_run(qtbot, tab):
    long_run(tab)
    with qtbot.waitSignal(tab.controller.progressed, timeout=10000):
        tab.start()
    model = tab._model
    assert model.optimizer.learning_rate == pytest.approx(0.001)
    tab.controls.learning_rate.setValue(0.0123)
    qtbot.waitUntil(lambda: abs(model.optimizer.learning_rate - 0.0123) < 1e-9, timeout=5000)
    assert tab.is_running()
    assert tab.curves._runs[-1].markers  # the change is marked on the curves
    with qtbot.waitSignal(tab.run_finished, timeout=10000):
        tab.controls.stop_button.click()


def test_window_close_during_training_stops_cleanly(qtbot):
    from PySide6.QtWidgets import QMainWindow

    from visualcnn.gui.app import create_application
    from visualcnn.gui.train_tab import TrainTabWidget

    class Window(QMainWindow):  # what the main window does on close
        def closeEvent(self, event):
            self.centralWidget().shutdown()
            super().closeEvent(event)

    create_application()
    window = Window()
    qtbot.addWidget(window)
    tab = TrainTabWidget()
    window.setCentralWidget(tab)
    tab.set_model_source(small_cnn)
    tab.controls.train_images.setValue(640)
    tab.controls.epochs.setValue(1000)
    window.show()
    finished = []
    tab.run_finished.connect(finished.append)
    with qtbot.waitSignal(tab.controller.progressed, timeout=10000):
        tab.start()
    thread = tab.controller._thread
    window.close()
    assert not tab.is_running()
    assert thread.isFinished()
    assert len(finished) == 1 and finished[0].built  # the weights so far are handed over


@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_divergence_shows_nan_and_keeps_last_good_weights(qtbot, tab):
    tab.set_model_source(linear_cnn)
    tab.set_training_defaults(TrainingConfig(optimizer="sgd", learning_rate=10.0, epochs=3))
    errors = []
    tab.controller.errored.connect(errors.append)
    with qtbot.waitSignal(tab.run_finished, timeout=30000) as finished:
        assert tab.start()
    model = finished.args[0]
    assert len(errors) == 1
    banner = tab.controls.banner
    assert banner.isVisible()
    assert "NaN" in banner.text() and "last good" in banner.text()
    assert all(np.isfinite(w).all() for w in model.get_weights())
    np.testing.assert_allclose(tab.filters.shown(), model.layers[0].weights[0][:, :, 0, :])
    assert tab.controls.start_button.isEnabled()


def test_model_source_error_disables_start(qtbot, tab):
    def broken():
        raise ValueError("Conv2D 'conv2d': kernel_size 5 is larger than the input 3x3")

    tab.set_model_source(broken)
    assert not tab.controls.start_button.isEnabled()
    assert "kernel_size 5 is larger" in tab.controls.banner.text()
    assert "kernel_size 5" in tab.controls.start_button.toolTip()
    assert not tab.start()

    def no_softmax():
        return Sequential([L.Input(shape=(28, 28, 1)), L.Flatten(), L.Dense(10)])

    tab.set_model_source(no_softmax)
    assert not tab.controls.start_button.isEnabled() and "softmax" in tab.controls.banner.text()
    tab.set_model_source(small_cnn)
    assert tab.controls.start_button.isEnabled() and not tab.controls.banner.isVisible()


def test_training_defaults_round_trip(tab):
    config = TrainingConfig(optimizer="rmsprop", learning_rate=0.002, batch_size=32, epochs=4,
                            validation_split=0.1, seed=7, schedule="cosine")
    tab.set_training_defaults(config)
    assert tab.training_settings() == config
    tab.set_training_defaults(None)
    assert tab.training_settings() == TrainingConfig()


def test_pinned_drawn_digit_is_the_probe(qtbot, tab):
    drawn = np.zeros((28, 28), np.float32)
    drawn[5:23, 13:15] = 1.0  # a "1"
    tab.set_probe_image(drawn)
    assert "drawn" in tab.probe_picker.caption.text()
    long_run(tab)
    tab.start()
    with qtbot.waitSignal(tab.controller.snapshot_taken, timeout=10000,
                          check_params_cb=lambda s: s.activations is not None) as blocker:
        pass
    np.testing.assert_array_equal(blocker.args[0].probe, drawn)
    # back to a test digit while training: the worker switches its probe
    tab.set_probe_image(None)
    tab.probe_picker.index.setValue(3)
    expected = tab.probe_picker.probe()
    with qtbot.waitSignal(tab.controller.snapshot_taken, timeout=10000,
                          check_params_cb=lambda s: s.probe is not None and np.array_equal(s.probe, expected)):
        pass
    with qtbot.waitSignal(tab.run_finished, timeout=10000):
        tab.controls.stop_button.click()


def test_the_window_counts_batches_as_the_engine_does(qtbot, tab):
    """1,000 images, split 0.33, batch 3: the window said 224 steps, the engine ran 223."""
    from visualcnn.engine.recipe import prepare_run
    from visualcnn.gui.train_tab import dataset_arrays

    tab.controls.train_images.setValue(1000)
    tab.controls.validation_split.setValue(0.33)
    tab.controls.batch_size.setValue(3)
    long_run(tab)
    config = tab.training_settings()
    engine = prepare_run(small_cnn(), config, dataset_arrays("mnist"), limit=1000)
    with qtbot.waitSignal(tab.controller.progressed, timeout=10000) as progressed:
        assert tab.start()
    assert progressed.args[0].batches == engine.steps_per_epoch == 223
    assert tab.controls._total_steps == 1000 * 223
    with qtbot.waitSignal(tab.run_finished, timeout=10000):
        tab.controls.stop_button.click()


def test_schedule_combo_mirrors_the_document_both_ways_and_undoes(tab, doc, stack):
    tab.bind_document(doc, stack)
    combo = tab.controls.schedule
    assert combo.currentData() == "constant" and doc.training.schedule == "constant"
    combo.setCurrentIndex(combo.findData("cosine"))  # widget -> command -> document
    assert doc.training.schedule == "cosine" and stack.count() == 1
    assert stack.undoText() == "Change learning-rate schedule"
    stack.undo()
    assert doc.training.schedule == "constant" and combo.currentData() == "constant"
    stack.redo()
    assert combo.currentData() == "cosine"
    doc.set_training(TrainingConfig(schedule="constant", epochs=2))  # document -> widget, no new command
    assert combo.currentData() == "constant" and stack.count() == 1


def test_a_cosine_run_decays_and_shows_the_current_rate(qtbot, tab):
    tab.controls.schedule.setCurrentIndex(tab.controls.schedule.findData("cosine"))
    tab.controls.learning_rate.setValue(0.004)
    shown = []
    tab.controller.progressed.connect(lambda report: shown.append((report, tab.controls.metrics.text())))
    with qtbot.waitSignal(tab.run_finished, timeout=60000):
        assert tab.start()
        assert not tab.controls.schedule.isEnabled()  # locked during a run, like the other settings
    optimizer = tab._model.optimizer
    assert type(optimizer.schedule).__name__ == "CosineDecay" and optimizer.schedule.decay_steps == 10
    assert optimizer.learning_rate == 0.0  # 640 images, batch 64: the rate after the 10th and last step
    rates = [report.learning_rate for report, _ in shown]
    assert rates and rates == sorted(rates, reverse=True) and rates[0] < 0.004
    report, _ = shown[-1]
    tab.controls.show_step(report)
    assert f"learning rate now {report.learning_rate:.3g}" in tab.controls.metrics.text()
    tab.controls.schedule.setCurrentIndex(tab.controls.schedule.findData("constant"))
    tab.controls.show_step(report)
    assert "learning rate now" not in tab.controls.metrics.text()  # a constant rate is in its box already
