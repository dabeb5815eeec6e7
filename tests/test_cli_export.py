"""`visualcnn export`: every format from the command line, the format read from OUT's ending,
a model a format cannot express, and targets that cannot be written (one line each)."""

from __future__ import annotations

import ast
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from visualcnn.cli import main
from visualcnn.commands.export import infer_format

REPO = Path(__file__).resolve().parents[1]
SEED = REPO / "resources" / "presets" / "seed_cnn.json"


def needs(format):
    """Skip until the format's module is in the tree (the formats are built in parallel)."""
    from visualcnn.engine.export import FORMATS

    pytest.importorskip(f"visualcnn.engine.export.{FORMATS[format][0]}")


def export(capsys, *args):
    code = main(["export", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained_file(tmp_path_factory):
    """The seed CNN with weights trained for a few steps on 64 digits (a file like `train --save`)."""
    from visualcnn.engine import load_model_file
    from visualcnn.engine.datasets import load_mnist
    from visualcnn.engine.model_io import compile_from_config
    from visualcnn.engine.recipe import prepare_labels, scale_images

    model_file = load_model_file(SEED)
    model = model_file.model
    compile_from_config(model, model_file.training)
    (x, y), _ = load_mnist()
    model.fit(scale_images(x[:64], model.input_shape), prepare_labels(y[:64], model.loss.name), batch_size=32,
              epochs=1, verbose=0)
    path = tmp_path_factory.mktemp("trained") / "seed_trained.json"
    model.save(path)
    return path, model


@pytest.mark.parametrize("name, format", [("seed.keras", "keras"), ("seed.onnx", "onnx"),
                                          ("seed.py", "keras-code"), ("seed_pytorch", "pytorch"),
                                          ("seed_pytorch/", "pytorch"), ("SEED.ONNX", "onnx")])
def test_the_format_is_read_from_the_ending(name, format):
    assert infer_format(name) == format


def test_an_existing_folder_means_pytorch(tmp_path):
    assert infer_format(str(tmp_path)) == "pytorch"


def test_an_ending_that_names_no_format_is_one_line(capsys, tmp_path):
    code, out, err = export(capsys, "seed_cnn", "-o", tmp_path / "seed.h5")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: cannot tell the format from 'seed.h5'")
    assert "--format" in err and not list(tmp_path.iterdir())


def test_untrained_preset_to_onnx_says_the_weights_are_fresh(capsys, tmp_path):
    pytest.importorskip("onnx")
    target = tmp_path / "seed.onnx"
    code, out, err = export(capsys, "seed_cnn", "-o", target)
    assert code == 0, err
    assert out.strip() == f"wrote {target} (onnx, fresh weights)"
    assert err.count("\n") == 1 and err.startswith("note: seed_cnn.json holds no trained weights")
    import onnx

    graph = onnx.load(str(target)).graph
    assert [i.name for i in graph.input] == ["input"] and [o.name for o in graph.output] == ["output"]


def test_trained_model_to_onnx_predicts_as_ours(capsys, tmp_path, trained_file):
    ort = pytest.importorskip("onnxruntime")
    path, model = trained_file
    target = tmp_path / "seed.onnx"
    code, out, err = export(capsys, path, "-o", target)
    assert code == 0 and err == "" and out.strip() == f"wrote {target} (onnx, trained weights)"
    x = np.random.default_rng(0).random((5, 28, 28, 1), dtype=np.float32)
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"input": x})[0], model.predict(x, verbose=0), atol=1e-5)


def test_trained_model_to_keras_holds_its_config_and_weights(capsys, tmp_path, trained_file):
    needs("keras")
    path, _ = trained_file
    target = tmp_path / "seed.keras"
    code, out, err = export(capsys, path, "-o", target)
    assert code == 0 and err == "" and "(keras, trained weights)" in out
    with zipfile.ZipFile(target) as archive:
        names = set(archive.namelist())
        config = json.loads(archive.read("config.json"))
    assert {"config.json", "metadata.json", "model.weights.h5"} <= names
    assert config["class_name"] in ("Sequential", "Functional")


def test_keras_needs_the_keras_ending(capsys, tmp_path):
    code, out, err = export(capsys, "seed_cnn", "--format", "keras", "-o", tmp_path / "seed.zip")
    assert code == 2 and err.count("\n") == 1 and "must end in .keras" in err and "seed.keras" in err


def test_keras_code_is_a_python_script(capsys, tmp_path):
    needs("keras-code")
    target = tmp_path / "train_seed.py"
    code, out, err = export(capsys, "seed_cnn", "-o", target)
    assert code == 0 and out.splitlines() == [f"wrote {target} (keras-code, fresh weights)"]
    tree = ast.parse(target.read_text())  # a script that parses
    assert "keras" in target.read_text() and tree.body


def test_keras_code_of_a_trained_model_says_where_its_weights_are(capsys, tmp_path, trained_file):
    needs("keras-code")
    path, _ = trained_file
    target = tmp_path / "seed.py"
    code, out, err = export(capsys, path, "-o", target)
    weights = tmp_path / "seed.weights.h5"
    assert code == 0 and out.splitlines() == [f"wrote {target} (keras-code, trained weights)",
                                              f"wrote {weights} (the weights the script loads)"]
    assert weights.is_file() and "seed.weights.h5" in target.read_text()


def test_pytorch_is_a_folder_with_model_and_train_scripts(capsys, tmp_path, trained_file):
    needs("pytorch")
    path, _ = trained_file
    target = tmp_path / "seed_pytorch"
    code, out, err = export(capsys, path, "-o", target)
    assert code == 0 and "(pytorch, trained weights)" in out
    files = {p.name for p in target.iterdir()}
    assert {"model.py", "train.py"} <= files and any(name.endswith(".safetensors") for name in files)
    for script in ("model.py", "train.py"):
        ast.parse((target / script).read_text())


def test_format_flag_overrides_the_ending(capsys, tmp_path):
    pytest.importorskip("onnx")
    target = tmp_path / "seed.bin"
    code, out, err = export(capsys, "seed_cnn", "--format", "onnx", "-o", target)
    assert code == 0 and target.is_file() and "(onnx," in out


def test_a_layer_name_keras_refuses_is_named(capsys, tmp_path):
    needs("keras")
    from visualcnn.engine import Sequential, layers

    model = Sequential([layers.Input(shape=(28, 28, 1)), layers.Conv2D(4, 3, name="conv/a"), layers.Flatten(),
                        layers.Dense(10, activation="softmax")], name="slash")
    model.build()
    model.save(tmp_path / "slash.json")
    code, out, err = export(capsys, tmp_path / "slash.json", "-o", tmp_path / "slash.keras")
    lines = err.splitlines()
    assert code == 2 and out == "" and not (tmp_path / "slash.keras").exists()
    assert lines[0] == "error: cannot export slash.json to keras (1 problem):"
    assert len(lines) == 2 and lines[1].startswith("  layer 'conv/a' (Conv2D): ")


def test_a_model_a_format_cannot_express_lists_each_layer(capsys, tmp_path, monkeypatch):
    """The problems come from the format's own problems(); the command lists them, one a line."""
    import importlib

    from visualcnn.engine.export import FORMATS

    module = importlib.import_module(f"visualcnn.engine.export.{FORMATS['onnx'][0]}")
    monkeypatch.setattr(module, "problems", lambda model: [
        f"layer '{layer.name}' ({layer.class_name}): not in this format" for layer in model.layers
        if layer.class_name in ("Conv2D", "Dropout")])
    target = tmp_path / "seed.onnx"
    code, out, err = export(capsys, "seed_cnn", "-o", target)
    lines = err.splitlines()
    assert code == 2 and out == "" and not target.exists()
    assert lines[0] == "error: cannot export seed_cnn.json to onnx (3 problems):"
    assert lines[1:] == ["  layer 'conv2d' (Conv2D): not in this format",
                         "  layer 'conv2d_1' (Conv2D): not in this format",
                         "  layer 'dropout' (Dropout): not in this format"]


def test_a_missing_folder_is_one_line_and_nothing_is_read(capsys, tmp_path):
    target = tmp_path / "no" / "such" / "seed.onnx"
    code, out, err = export(capsys, "seed_cnn", "-o", target)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith(f"error: cannot export to {target}: the folder") and "does not exist" in err


def test_a_folder_where_a_file_should_go_is_one_line(capsys, tmp_path):
    (tmp_path / "seed.onnx").mkdir()
    code, out, err = export(capsys, "seed_cnn", "-o", tmp_path / "seed.onnx")
    assert code == 2 and err.count("\n") == 1 and "it is a folder" in err


def test_a_file_in_the_way_of_the_pytorch_folder_is_one_line(capsys, tmp_path):
    (tmp_path / "seed_pytorch").write_text("not a folder")
    code, out, err = export(capsys, "seed_cnn", "--format", "pytorch", "-o", tmp_path / "seed_pytorch")
    assert code == 2 and err.count("\n") == 1 and "in the way" in err
    assert (tmp_path / "seed_pytorch").read_text() == "not a folder"


def test_a_folder_of_other_files_is_never_replaced(capsys, tmp_path):
    needs("pytorch")
    folder = tmp_path / "Documents"
    folder.mkdir()
    (folder / "thesis.tex").write_text("years of work")
    code, out, err = export(capsys, "seed_cnn", "-o", folder)  # an existing folder means pytorch
    assert code == 2 and err.count("\n") == 1 and "already holds thesis.tex" in err
    assert [p.name for p in folder.iterdir()] == ["thesis.tex"]


def test_a_previous_export_is_replaced(capsys, tmp_path):
    needs("pytorch")
    target = tmp_path / "seed_pytorch"
    assert export(capsys, "seed_cnn", "-o", target)[0] == 0
    (target / "__pycache__").mkdir()  # left by running its scripts
    code, out, err = export(capsys, "seed_cnn", "-o", target)
    assert code == 0 and (target / "model.py").is_file()


def test_an_unreadable_model_is_one_line(capsys, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    code, out, err = export(capsys, bad, "-o", tmp_path / "x.onnx")
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: bad.json: not valid JSON")
