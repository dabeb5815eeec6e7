"""Issue 16 in the window: settings saved with the project, read-only presets, the quit
prompt says what changed, dropped weights are announced, Ctrl+Z from any field, a damaged
data set or a too-big model is explained in the Train tab instead of breaking the window."""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog



def test_train_tab_settings_are_the_documents_undoable_and_saved(seed_window, tmp_path):
    controls = seed_window.train_panel.controls
    assert not seed_window.is_modified
    controls.batch_size.setValue(128)
    controls.learning_rate.setValue(0.005)
    doc = seed_window.document
    assert doc.training.batch_size == 128 and doc.training.learning_rate == pytest.approx(0.005)
    assert seed_window.is_modified and seed_window.isWindowModified()
    path = tmp_path / "settings.json"
    assert seed_window.save_to(path)
    saved = json.loads(path.read_text())["training"]
    assert saved["batch_size"] == 128 and saved["learning_rate"] == pytest.approx(0.005)
    seed_window.new_project()
    assert controls.batch_size.value() == 64  # the controls follow the document
    assert seed_window.open_file(path)
    assert controls.batch_size.value() == 128 and controls.learning_rate.value() == pytest.approx(0.005)
    assert seed_window.train_panel.training_settings() == doc.training
    # undo works on settings like on any edit, and the widgets follow
    controls.epochs.setValue(3)
    assert doc.training.epochs == 3
    seed_window.undo_stack.undo()
    assert doc.training.epochs == 1 and controls.epochs.value() == 1


def test_optimizer_change_is_one_step_with_its_learning_rate(seed_window):
    controls = seed_window.train_panel.controls
    controls.optimizer.setCurrentIndex(controls.optimizer.findData("sgd"))
    assert seed_window.document.training.optimizer == "sgd"
    assert seed_window.document.training.learning_rate == pytest.approx(0.01)
    assert seed_window.undo_stack.count() == 1
    seed_window.undo_stack.undo()
    assert controls.optimizer.currentData() == "adam" and controls.learning_rate.value() == pytest.approx(0.001)


def test_quit_prompt_names_what_changed(seed_window, dialogs):
    seed_window.train_panel.controls.batch_size.setValue(32)
    assert seed_window.unsaved_changes_text() == "The training settings have unsaved changes."
    seed_window.inspector.editors["filters"].spin.setValue(8)
    assert seed_window.unsaved_changes_text() == "The pipeline and the training settings have unsaved changes."
    seed_window.new_project()  # the dialogs fixture answers Discard
    assert dialogs[-1][0] == "question" and "The pipeline and the training settings" in dialogs[-1][2]


def test_a_bundled_preset_opened_by_path_is_never_overwritten(seed_window, seed_path, tmp_path, monkeypatch, dialogs):
    original = seed_path.read_bytes()
    assert seed_window.open_file(seed_path, confirm=False)
    assert seed_window.path is None and "(preset)" in seed_window.windowTitle()
    seed_window.inspector.editors["filters"].spin.setValue(8)
    asked = []
    target = tmp_path / "my_cnn.json"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (asked.append(a) or str(target), ""))
    assert seed_window.save()  # Save goes to Save As
    assert asked and target.exists() and seed_path.read_bytes() == original
    # even chosen explicitly, the preset file is refused with one clear line
    assert not seed_window.save_to(seed_path)
    assert dialogs[-1][0] == "critical" and "read-only" in dialogs[-1][2]
    assert seed_path.read_bytes() == original


def test_dropped_weights_are_announced_and_undo_brings_them_back(seed_window):
    from visualcnn.engine.model_io import encode_weights
    from visualcnn.gui.commands import SetTrainedWeightsCommand

    model = seed_window.build_engine_model()
    model.build(seed=2)
    weights = encode_weights(model)
    seed_window.undo_stack.push(SetTrainedWeightsCommand(seed_window.document, weights))
    seed_window.pipeline.list_widget.select_row(6)  # Dropout: its rate touches no weight
    seed_window.inspector.editors["rate"].edit.textEdited.emit("0.25")
    assert seed_window.document.entry(6).config["rate"] == 0.25
    assert seed_window.document.trained_weights is weights
    seed_window.pipeline.list_widget.select_row(0)
    seed_window.inspector.editors["filters"].spin.setValue(8)
    assert seed_window.document.trained_weights is None
    message = seed_window.statusBar().currentMessage()
    assert "trained weights were dropped because conv2d's filters changed" in message and "Undo" in message
    seed_window.undo_stack.undo()
    assert seed_window.document.trained_weights is weights


def test_ctrl_z_undoes_while_an_inspector_field_has_focus(seed_window, qtbot):
    spin = seed_window.inspector.editors["filters"].spin
    spin.setValue(8)
    assert seed_window.document.entry(0).config["filters"] == 8
    spin.setFocus()
    qtbot.waitUntil(spin.hasFocus)
    focused = seed_window.focusWidget()
    qtbot.keyClick(focused, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert seed_window.document.entry(0).config["filters"] == 32
    qtbot.keyClick(seed_window.focusWidget(), Qt.Key.Key_Z,
                   Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert seed_window.document.entry(0).config["filters"] == 8


def test_a_damaged_mnist_opens_the_window_and_the_train_tab_explains(qtbot, tmp_path, monkeypatch, dialogs,
                                                                      seed_path):
    from PySide6.QtCore import QSettings

    from visualcnn.engine.datasets import load_mnist
    from visualcnn.gui import train_tab
    from visualcnn.gui.app import create_application
    from visualcnn.gui.main_window import MainWindow

    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                 "t10k-labels-idx1-ubyte.gz"):
        (tmp_path / name).write_bytes(b"\x1f\x8b not really gzip")
    monkeypatch.setattr(train_tab, "_DATASETS", {})
    monkeypatch.setattr(train_tab, "load_dataset", lambda name, **kw: load_mnist(tmp_path, cache=False))
    create_application()
    window = MainWindow(settings=QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    window.show()
    assert window.load_preset(seed_path)
    assert window.train_button.isEnabled()  # the builder does not need MNIST
    window.inspector.editors["filters"].spin.setValue(8)
    assert window.document.entry(0).config["filters"] == 8
    window.tabs.setCurrentWidget(window.train_page)
    assert not window.train_panel.start()
    controls = window.train_panel.controls
    assert "could not be loaded" in controls.banner.text() and controls.banner.isVisibleTo(window)
    assert not controls.start_button.isEnabled()
    assert not window.train_panel.is_running()
    window.undo_stack.setClean()


def test_a_model_too_big_for_the_machine_is_refused_before_allocating(seed_window, monkeypatch):
    from visualcnn.engine.memory import available_memory_bytes

    seed_window.pipeline.list_widget.select_row(5)  # Dense(64) after 1600 features
    seed_window.inspector.editors["units"].spin.setValue(10_000_000)  # 64 GB of weights, and as much again
    problem = seed_window.train_panel._blocker_reason()
    assert problem and "reduce" in problem and available_memory_bytes() > 0
    assert not seed_window.train_button.isEnabled()
    seed_window.tabs.setCurrentWidget(seed_window.train_page)
    panel = seed_window.train_panel
    assert not panel.start() and not panel.is_running()
    assert "Cannot train" in panel.controls.banner.text() and "reduce" in panel.controls.banner.text()
    memory = panel.controls.memory
    assert "training needs about" in memory.text() and "GiB" in memory.text() and "8a0010" in memory.styleSheet()
    panel.controls.batch_size.setValue(32)  # a settings edit re-prices the model (still too big: weights)
    assert "at batch 32" in memory.text()
    assert panel._model is None or sum(w.nbytes for w in panel._model.weights) < 2**30


def test_opening_a_huge_conv_on_the_train_tab_allocates_nothing(window, tmp_path, qtbot):
    path = tmp_path / "huge.json"
    path.write_text(json.dumps({"format": "visualcnn.model", "version": 1, "input_shape": [28, 28, 1],
                                "layers": [{"class_name": "Conv2D", "config": {"filters": 10**7, "kernel_size": 3}},
                                           {"class_name": "Flatten", "config": {}},
                                           {"class_name": "Dense", "config": {"units": 10,
                                                                              "activation": "softmax"}}],
                                "window": {"tab": 1}}))
    assert window.open_file(path, confirm=False)
    assert window.tabs.currentWidget() is window.train_page
    qtbot.wait(50)  # the tab's deferred preview runs
    assert window.train_panel._model is None  # no preview network was built
    assert "reduce" in (window.train_panel._blocker_reason() or "")
    assert not window.train_panel.controls.start_button.isEnabled()


def test_the_draw_tab_follows_an_edit_that_keeps_the_weights(seed_window):
    from visualcnn.engine.model_io import encode_weights
    from visualcnn.gui.commands import SetTrainedWeightsCommand

    model = seed_window.build_engine_model()
    model.build(seed=2)
    seed_window.undo_stack.push(SetTrainedWeightsCommand(seed_window.document, encode_weights(model)))
    seed_window.inspector.editors["activation"].combo.setCurrentText("tanh")
    assert seed_window.document.trained_weights is not None
    drawn = seed_window.draw_panel._model
    assert drawn is not None and drawn.layers[0].config["activation"] == "tanh"
