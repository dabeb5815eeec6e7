"""File ▸ Export… (the four formats, their problems before writing, the target path, one message),
File ▸ Open of real Keras files with their weights, and File ▸ Load Weights…"""

from __future__ import annotations

import importlib
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtWidgets import QLabel, QMessageBox

from visualcnn.engine.export import FORMATS
from visualcnn.engine.model_io import encode_weights
from visualcnn.gui.commands import SetTrainedWeightsCommand
from visualcnn.gui.export_dialog import ExportDialog

REPO = Path(__file__).resolve().parents[2]
KERAS_FILES = REPO / "tests" / "engine" / "keras_files"


def needs(format):
    """Skip until the format's module is in the tree (the formats are built in parallel)."""
    pytest.importorskip(f"visualcnn.engine.export.{FORMATS[format][0]}")


@pytest.fixture
def informed(monkeypatch):
    shown = []
    def information(parent, title, text, *args, **kwargs):
        shown.append((title, text))
        return QMessageBox.StandardButton.Ok

    monkeypatch.setattr(QMessageBox, "information", information)
    return shown


@pytest.fixture
def trained_window(seed_window):
    """The seed CNN window with trained weights in the project (built with a fixed seed)."""
    model = seed_window.build_engine_model()
    model.build(seed=3)
    seed_window.undo_stack.push(SetTrainedWeightsCommand(seed_window.document, encode_weights(model)))
    return seed_window


def open_export(window, qtbot, tmp_path) -> ExportDialog:
    window.path = tmp_path / "seed_cnn.json"  # the export goes beside the project by default
    dialog = window.export_dialog()
    qtbot.addWidget(dialog)
    return dialog


def test_the_dialog_lists_every_format_with_its_description(trained_window, qtbot, tmp_path):
    dialog = open_export(trained_window, qtbot, tmp_path)
    assert list(dialog.buttons) == list(FORMATS)
    texts = [label.text() for label in dialog.findChildren(QLabel)]
    for _, description, _ in FORMATS.values():
        assert any(description[1:] in text for text in texts), description
    assert "trained weights" in dialog.weights_label.text() and "no trained" not in dialog.weights_label.text()


def test_the_path_follows_the_format(trained_window, qtbot, tmp_path):
    dialog = open_export(trained_window, qtbot, tmp_path)
    dialog.set_format("onnx")
    assert dialog.path() == tmp_path / "seed_cnn.onnx"
    dialog.set_format("pytorch")
    assert dialog.path() == tmp_path / "seed_cnn_pytorch"
    dialog.path_edit.setText(str(tmp_path / "mine.onnx"))
    dialog.set_format("keras-code")
    assert dialog.path() == tmp_path / "mine.py", "the chosen name stays, with the format's ending"


def test_exports_onnx_with_the_trained_weights(trained_window, qtbot, tmp_path, informed):
    ort = pytest.importorskip("onnxruntime")
    needs("onnx")
    dialog = open_export(trained_window, qtbot, tmp_path)
    dialog.set_format("onnx")
    target = tmp_path / "seed_cnn.onnx"
    dialog.export_button.click()
    assert target.is_file() and not dialog.isVisible()
    assert informed == [("Export done", f"Exported ONNX model (.onnx) with trained weights to {target}")]
    x = np.random.default_rng(1).random((4, 28, 28, 1), dtype=np.float32)
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    ours = trained_window.trained_model().predict(x, verbose=0)
    np.testing.assert_allclose(session.run(None, {"input": x})[0], ours, atol=1e-5)


def test_exports_keras(trained_window, qtbot, tmp_path, informed):
    needs("keras")
    dialog = open_export(trained_window, qtbot, tmp_path)
    dialog.set_format("keras")
    written = dialog.export_to("keras", tmp_path / "seed_cnn.keras")
    assert written == tmp_path / "seed_cnn.keras" and informed and str(written) in informed[-1][1]
    with zipfile.ZipFile(written) as archive:
        assert {"config.json", "metadata.json", "model.weights.h5"} <= set(archive.namelist())


def test_exports_the_scripts_and_says_what_was_written(trained_window, qtbot, tmp_path, informed):
    needs("keras-code")
    needs("pytorch")
    dialog = open_export(trained_window, qtbot, tmp_path)
    script = dialog.export_to("keras-code", tmp_path / "seed_cnn.py")
    assert script.is_file() and (tmp_path / "seed_cnn.weights.h5").is_file()
    assert informed[-1][1] == (f"Exported Keras script (.py) with trained weights to {script}, and the weights it "
                               "loads to seed_cnn.weights.h5 beside it")
    folder = dialog.export_to("pytorch", tmp_path / "seed_cnn_pytorch")
    assert {"model.py", "train.py"} <= {p.name for p in folder.iterdir()}
    assert informed[-1][1].startswith(f"Exported PyTorch folder with trained weights to {folder} (a folder:")


def test_an_empty_pipeline_cannot_be_exported_and_says_why(window, dialogs):
    assert window.export_dialog() is None
    assert dialogs[-1] == ("critical", "Cannot export",
                           "Cannot export this pipeline: Add layers to the pipeline first.")


def test_an_untrained_pipeline_says_its_weights_are_fresh(seed_window, qtbot, tmp_path):
    dialog = open_export(seed_window, qtbot, tmp_path)
    assert "no trained weights" in dialog.weights_label.text()
    assert not dialog.model.built


def test_a_layer_keras_cannot_name_disables_the_keras_formats(window, qtbot, tmp_path, dialogs):
    """A real refusal: Keras builds variable paths from layer names, so '/' in one cannot go to Keras."""
    needs("keras")
    needs("keras-code")
    from visualcnn.engine import Sequential, layers

    model = Sequential([layers.Input(shape=(28, 28, 1)), layers.Conv2D(4, 3, name="conv/a"), layers.Flatten(),
                        layers.Dense(10, activation="softmax")], name="slash")
    model.build()
    model.save(tmp_path / "slash.json")
    assert window.open_file(tmp_path / "slash.json")
    dialog = window.export_dialog()
    qtbot.addWidget(dialog)
    for format in ("keras", "keras-code"):
        assert not dialog.buttons[format].isEnabled()
        assert dialog.reasons[format].text().startswith("Cannot export: layer 'conv/a' (Conv2D): ")
    assert dialog.format() == "pytorch" and dialog.path() == tmp_path / "slash_pytorch"
    assert dialog.export_to("keras", tmp_path / "slash.keras") is None and not (tmp_path / "slash.keras").exists()
    assert dialogs[-1][0] == "critical" and "layer 'conv/a' (Conv2D)" in dialogs[-1][2]


def test_a_layer_the_format_cannot_express_disables_it_with_the_reason(trained_window, qtbot, tmp_path, monkeypatch,
                                                                      dialogs):
    needs("onnx")
    module = importlib.import_module(f"visualcnn.engine.export.{FORMATS['onnx'][0]}")
    monkeypatch.setattr(module, "problems", lambda model: [
        f"layer '{layer.name}' ({layer.class_name}): no such operator" for layer in model.layers
        if layer.class_name == "Dropout"])
    dialog = open_export(trained_window, qtbot, tmp_path)
    assert not dialog.buttons["onnx"].isEnabled()
    assert dialog.reasons["onnx"].text() == "Cannot export: layer 'dropout' (Dropout): no such operator"
    assert dialog.format() != "onnx" and dialog.buttons["onnx"].toolTip() == dialog.reasons["onnx"].text()
    assert not dialog.set_format("onnx") and dialog.format() != "onnx"
    # even forced, nothing is written and the one message names the layer
    assert dialog.export_to("onnx", tmp_path / "x.onnx") is None
    assert not (tmp_path / "x.onnx").exists()
    assert dialogs[-1][0] == "critical" and "layer 'dropout' (Dropout): no such operator" in dialogs[-1][2]


def test_a_target_that_cannot_be_written_is_one_message(trained_window, qtbot, tmp_path, dialogs):
    needs("onnx")
    dialog = open_export(trained_window, qtbot, tmp_path)
    target = tmp_path / "missing" / "seed.onnx"
    assert dialog.export_to("onnx", target) is None
    kind, title, text = dialogs[-1]
    assert (kind, title) == ("critical", "Cannot export") and "\n" not in text and "does not exist" in text


def test_a_folder_of_the_users_files_is_never_replaced(trained_window, qtbot, tmp_path, dialogs):
    needs("pytorch")
    folder = tmp_path / "Documents"
    folder.mkdir()
    (folder / "thesis.tex").write_text("years of work")
    dialog = open_export(trained_window, qtbot, tmp_path)
    assert dialog.export_to("pytorch", folder) is None
    kind, title, text = dialogs[-1]
    assert kind == "critical" and "already holds thesis.tex" in text and "\n" not in text
    assert [p.name for p in folder.iterdir()] == ["thesis.tex"]


def keras_reader_or_skip(path: Path):
    """The window opens Keras files through the engine's reader (H1/H2): skip until it reads them."""
    from visualcnn.engine import load_model_file
    from visualcnn.engine.layers import ConfigError

    if not path.exists():
        pytest.skip(f"{path.name} is not in the tree yet")
    try:
        model_file = load_model_file(path)
    except ConfigError as exc:
        pytest.skip(f"the engine does not read {path.suffix} files yet: {exc}")
    return model_file


@pytest.mark.parametrize("name, second", [("seed_cnn.keras", "MaxPooling2D"), ("lenet5.h5", "AveragePooling2D")])
def test_opening_a_keras_file_shows_it_and_predicts_as_keras(window, qtbot, name, second):
    path = KERAS_FILES / name
    keras_reader_or_skip(path)
    fixtures = np.load(KERAS_FILES / "predictions.npz")
    assert window.open_file(path)
    assert [entry.class_name for entry in window.document.entries][:2] == ["Conv2D", second]
    assert window.windowTitle().startswith(f"{name} (imported)") and window.path is None
    dialog = window.export_dialog()
    assert dialog.path().parent == KERAS_FILES, "the export goes beside the Keras file by default"
    dialog.close()
    assert window.draw_panel.has_model(), "the imported weights reach the Draw tab"
    predicted = window.draw_panel._model.predict(fixtures["x"], verbose=0)
    np.testing.assert_allclose(predicted, fixtures[path.stem], atol=1e-5)


def test_an_imported_file_is_saved_as_a_new_visualcnn_file(window, tmp_path, monkeypatch):
    path = KERAS_FILES / "seed_cnn.keras"
    keras_reader_or_skip(path)
    before = path.read_bytes()
    assert window.open_file(path)
    from PySide6.QtWidgets import QFileDialog

    asked = []
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        lambda parent, title, start, *a, **k: asked.append(start) or (str(tmp_path / "mine.json"), ""))
    assert window.save()
    assert asked and asked[0].endswith(".json"), "Save asks for a new name: never over the Keras file"
    assert path.read_bytes() == before
    assert "weights" in (tmp_path / "mine.json").read_text()
    assert window.windowTitle().startswith("mine.json")


def test_the_draw_tab_shows_the_imported_models_feature_maps(window, qtbot):
    from tests.gui.test_draw_tab import draw_one

    path = KERAS_FILES / "seed_cnn.keras"
    keras_reader_or_skip(path)
    assert window.open_file(path)
    window.tabs.setCurrentWidget(window.draw_page)
    with qtbot.waitSignal(window.draw_panel.classified, timeout=5000):
        draw_one(qtbot, window.draw_panel.canvas)
    qtbot.waitUntil(lambda: len(window.draw_panel._maps.layers()) >= 2, timeout=5000)
    assert window.draw_panel._maps.layers()[0].name == "conv2d"


def test_the_train_tab_shows_the_imported_weights_and_probe_maps(window, qtbot):
    path = KERAS_FILES / "seed_cnn.keras"
    keras_reader_or_skip(path)
    assert window.open_file(path)
    imported = window.trained_model()
    window.tabs.setCurrentWidget(window.train_page)
    tab = window.train_panel
    np.testing.assert_allclose(tab.filters.shown(), imported.layers[0].weights[0][:, :, 0, :])
    qtbot.waitUntil(lambda: len(tab.feature_maps.layers()) >= 1, timeout=20000)  # once the test digits load
    probe = np.asarray(tab.probe_picker.probe(), np.float32).reshape(1, 28, 28, 1)
    np.testing.assert_allclose(tab.feature_maps.layers()[0].maps, imported.activations(probe)["conv2d"][0],
                               atol=1e-6)


def test_load_weights_from_a_keras_weights_file(window, qtbot, dialogs):
    """A real Keras .weights.h5 (Model.load_weights) onto the pipeline of the same model."""
    keras_reader_or_skip(KERAS_FILES / "residual.keras")
    assert window.open_file(KERAS_FILES / "residual.keras")
    window.document.set_trained_weights(None)  # the pipeline alone, as if built by hand
    assert not window.draw_panel.has_model()
    assert window.load_weights_file(KERAS_FILES / "residual.weights.h5"), dialogs
    fixtures = np.load(KERAS_FILES / "predictions.npz")
    np.testing.assert_allclose(window.trained_model().predict(fixtures["x"], verbose=0), fixtures["residual"],
                               atol=1e-5)
    assert window.draw_panel.has_model()
    window.undo_stack.undo()
    assert window.document.trained_weights is None, "loading weights is one undoable step"


def test_a_weights_only_file_under_another_name_is_loaded_as_weights(window, tmp_path, dialogs):
    """tf.keras 2's save_weights("w.h5") may have any name: the content says it holds weights only."""
    import shutil

    keras_reader_or_skip(KERAS_FILES / "residual.keras")
    assert window.open_file(KERAS_FILES / "residual.keras")
    window.document.set_trained_weights(None)
    renamed = tmp_path / "w.h5"
    shutil.copy(KERAS_FILES / "residual.weights.h5", renamed)
    assert window.load_weights_file(renamed), dialogs
    fixtures = np.load(KERAS_FILES / "predictions.npz")
    np.testing.assert_allclose(window.trained_model().predict(fixtures["x"], verbose=0), fixtures["residual"],
                               atol=1e-5)


def test_a_keras_weights_file_of_another_model_is_refused(seed_window, dialogs):
    keras_reader_or_skip(KERAS_FILES / "residual.keras")
    assert not seed_window.load_weights_file(KERAS_FILES / "residual.weights.h5")
    kind, title, text = dialogs[-1]
    assert (kind, title) == ("critical", "Cannot load weights") and "\n" not in text
    assert text.startswith("residual.weights.h5: ") and "conv2d" in text, text
    assert seed_window.document.trained_weights is None


def test_load_weights_that_do_not_fit_names_the_layer(seed_window, tmp_path, dialogs):
    from visualcnn.engine import Sequential, layers

    other = Sequential([layers.Input(shape=(28, 28, 1)), layers.Conv2D(16, 3, name="conv2d"), layers.Flatten(),
                        layers.Dense(10, name="dense")])
    other.build()
    path = tmp_path / "other.json"
    other.save(path)
    assert not seed_window.load_weights_file(path)
    kind, title, text = dialogs[-1]
    assert (kind, title) == ("critical", "Cannot load weights") and "\n" not in text
    assert text.startswith("other.json: ") and "conv2d" in text
    assert seed_window.document.trained_weights is None


def test_load_weights_from_our_trained_file(seed_window, tmp_path):
    model = seed_window.build_engine_model()
    model.build(seed=7)
    path = tmp_path / "trained.json"
    model.save(path)
    assert seed_window.load_weights_file(path)
    loaded = seed_window.trained_model()
    assert all((a == b).all() for a, b in zip(loaded.get_weights(), model.get_weights()))
    assert seed_window.draw_panel.has_model()
