"""The Train tab's schedule and callback settings, the planned learning-rate curve under
the loss curve, and Continue training = the engine's exact resume (offscreen)."""

from __future__ import annotations

import numpy as np
import pytest

from visualcnn.engine import Sequential
from visualcnn.engine import layers as L
from visualcnn.engine.schedules import learning_rate_curve
from visualcnn.engine.training_config import TrainingConfig

pytest.importorskip("pytestqt")


def noisy_cnn() -> Sequential:
    """Dropout and an augmentation layer: their random generators must resume too."""
    return Sequential([L.Input(shape=(28, 28, 1)), L.RandomTranslation(0.1, 0.1), L.Conv2D(4, 3, activation="relu"),
                       L.MaxPooling2D(), L.Dropout(0.3), L.Flatten(), L.Dense(10, activation="softmax")])


@pytest.fixture
def tab(qtbot):
    from visualcnn.gui.app import create_application
    from visualcnn.gui.train_tab import TrainTabWidget

    create_application()
    widget = TrainTabWidget()
    qtbot.addWidget(widget)
    widget.set_model_source(noisy_cnn)
    widget.set_training_defaults(TrainingConfig(batch_size=64, epochs=1, validation_split=0.2, seed=3))
    widget.controls.train_images.setValue(320)
    widget.resize(1200, 800)
    widget.show()
    qtbot.waitExposed(widget)
    yield widget
    widget.shutdown()


def run(qtbot, tab, start) -> Sequential:
    with qtbot.waitSignal(tab.run_finished, timeout=60000) as finished:
        assert start()
    return finished.args[0]


def test_settings_mirror_the_document_and_undo(tab, doc, stack):
    tab.bind_document(doc, stack)
    panel = tab.controls.callbacks
    assert not panel.patience.isEnabled()  # off until early stopping is on
    panel.early_stopping.setChecked(True)
    assert doc.training.early_stopping and stack.undoText() == "Change early stopping"
    assert panel.patience.isEnabled() and panel.restore_best.isEnabled()
    panel.restore_best.setChecked(True)
    assert doc.training.restore_best_weights
    stack.undo()
    stack.undo()
    assert not doc.training.early_stopping and not panel.early_stopping.isChecked()
    assert not panel.decay_rate.isEnabled()  # only for the step / exponential schedules
    tab.controls.schedule.setCurrentIndex(tab.controls.schedule.findData("step"))
    assert doc.training.schedule == "step" and panel.decay_rate.isEnabled()
    panel.decay_rate.setValue(0.25)
    assert doc.training.decay_rate == 0.25
    doc.set_training(TrainingConfig(reduce_lr_on_plateau=True, reduce_lr_factor=0.3, monitor="loss"))
    assert panel.reduce_lr.isChecked() and panel.reduce_factor.value() == 0.3
    assert panel.monitor.currentData() == "loss"


def test_early_stopping_without_validation_is_refused_with_the_reason(tab):
    tab.controls.validation_split.setValue(0.0)
    tab.controls.callbacks.early_stopping.setChecked(True)
    assert not tab.controls.start_button.isEnabled()
    assert "needs validation data" in tab.controls.banner.text()
    tab.controls.callbacks.monitor.setCurrentIndex(tab.controls.callbacks.monitor.findData("loss"))
    assert tab.controls.start_button.isEnabled()


def test_the_planned_schedule_is_drawn_under_the_loss_before_the_run(tab):
    tab.controls.epochs.setValue(3)
    tab.controls.schedule.setCurrentIndex(tab.controls.schedule.findData("step"))
    x, rates = tab.curves.learning_rate.planned_series()
    expected_x, expected = learning_rate_curve(tab.training_settings(), 4)  # 256 training images / 64
    assert x.tolist() == expected_x.tolist() and rates.tolist() == expected.tolist()
    assert rates[0] == pytest.approx(0.001) and rates[-1] == pytest.approx(0.00025)
    assert "× 0.5 every 1 epoch (4 batches per epoch)" in tab.controls.callbacks.plan.text()
    assert tab.curves.lr_plot.toolTip() == tab.controls.callbacks.plan.text()
    assert tab.curves.loss_plot.viewRange()[0][1] >= 3.0  # the axes make room for the planned epochs
    tab.controls.schedule.setCurrentIndex(tab.controls.schedule.findData("cosine"))
    assert tab.curves.learning_rate.planned_series()[1][-1] < 1e-4


def test_continue_training_gives_the_weights_of_one_longer_run(qtbot, tab):
    tab.controls.epochs.setValue(2)
    straight = run(qtbot, tab, tab.start)
    used_x, used = tab.curves.learning_rate.used_series()
    assert used.size > 0 and np.all(used == pytest.approx(0.001))  # the rate drawn during the run
    tab.controls.epochs.setValue(1)
    first = run(qtbot, tab, tab.start)
    assert tab.controls.callbacks.continue_button.isEnabled()
    tab.controls.train_images.setValue(60000)  # as after reopening the project: Continue uses the run's count
    tab.refresh_model_source()
    assert "Continue from epoch 2" in tab.controls.callbacks.continue_button.toolTip()
    continued = run(qtbot, tab, tab.continue_training)
    assert continued is not first  # a fresh network from the pipeline, given the saved weights
    assert tab.controls.train_images.value() == 320
    assert all(np.array_equal(a, b) for a, b in zip(continued.get_weights(), straight.get_weights()))
    assert continued.optimizer.iterations == straight.optimizer.iterations == 8
    assert tab.curves.series("epoch_loss")[0].tolist() == [1.5]  # drawn after the first epoch


def test_continue_refuses_other_settings_in_one_line(qtbot, tab):
    assert not tab.controls.callbacks.continue_button.isEnabled()  # nothing to continue yet
    run(qtbot, tab, tab.start)
    tab.controls.batch_size.setValue(32)
    assert not tab.continue_training()
    assert tab.controls.banner.text().startswith("Cannot continue: cannot continue training: the run being "
                                                 "continued used batch size 64")


def test_the_document_keeps_the_state_and_early_stopping_speaks(qtbot, tab, doc, stack):
    from visualcnn.engine.model_io import encode_weights

    tab.bind_document(doc, stack)
    tab.set_model_source(doc.build_model)
    doc.set_training(TrainingConfig(batch_size=64, epochs=6, validation_split=0.2, learning_rate=0.5,
                                    early_stopping=True, patience=0, restore_best_weights=True,
                                    monitor="val_accuracy"))  # stuck at one class: no better accuracy
    tab.run_finished.connect(lambda model: doc.set_trained_weights(encode_weights(model)))
    model = run(qtbot, tab, tab.start)
    section = doc.section("resume")
    assert section is not None and section["epochs_done"] < 6  # stopped early
    assert "early stopping" in tab.controls.banner.text()
    assert "Restoring model weights from the end of the best epoch" in tab.controls.banner.text()
    from visualcnn.engine.resume import weights_digest

    assert section["weights_sha256"] == weights_digest(model)
    assert tab.controls.callbacks.continue_button.isEnabled()
