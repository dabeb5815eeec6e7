"""`visualcnn train` / `visualcnn evaluate`: refusals, JSON output, save + evaluate."""

import argparse
import json

import pytest

from visualcnn.cli import main


def _model_file(tmp_path, last_layer, name="m.json", training=None):
    doc = {"format": "visualcnn.model", "version": 1, "input_shape": [28, 28, 1],
           "layers": [{"class_name": "Conv2D", "config": {"filters": 4, "kernel_size": 3, "activation": "relu"}},
                      {"class_name": "MaxPooling2D", "config": {}},
                      {"class_name": "Flatten", "config": {}}, last_layer]}
    if training:
        doc["training"] = training
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return str(path)


@pytest.mark.parametrize("last,expected", [
    ({"class_name": "Dense", "config": {"units": 8, "activation": "softmax"}}, "has 8 outputs, but MNIST has 10 digits: set its units to 10"),
    ({"class_name": "Dense", "config": {"units": 10}}, "set activation='softmax' on it"),
])
def test_refuses_models_that_cannot_classify_digits(tmp_path, capsys, last, expected):
    code = main(["train", _model_file(tmp_path, last), "--limit", "10"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: cannot train this model on MNIST") and expected in err


def test_refuses_bad_flags(tmp_path, capsys):
    path = _model_file(tmp_path, {"class_name": "Dense", "config": {"units": 10, "activation": "softmax"}})
    assert main(["train", path, "--learning-rate", "-1"]) == 2
    assert "learning_rate expected a number > 0" in capsys.readouterr().err
    assert main(["train", path, "--limit", "0"]) == 2
    assert "--limit must be a positive number" in capsys.readouterr().err


def test_train_json_save_and_evaluate(tmp_path, capsys):
    path = _model_file(tmp_path, {"class_name": "Dense", "config": {"units": 10, "activation": "softmax"}},
                       training={"optimizer": "sgd", "learning_rate": 0.05, "batch_size": 16, "epochs": 3})
    saved = str(tmp_path / "trained.json")
    code = main(["train", path, "--limit", "600", "--epochs", "1", "--optimizer", "adam", "--json",
                 "--save", saved, "--seed", "3"])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    result = json.loads(out[-1])
    assert set(result) >= {"test_accuracy", "test_loss", "epochs", "seconds", "history"}
    assert result["epochs"] == 1 and result["test_accuracy"] > 0.5
    assert main(["evaluate", saved, "--json"]) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["test_accuracy"] == pytest.approx(result["test_accuracy"])


def test_evaluate_refuses_a_file_without_weights(tmp_path, capsys):
    path = _model_file(tmp_path, {"class_name": "Dense", "config": {"units": 10, "activation": "softmax"}})
    assert main(["evaluate", path]) == 2
    assert "holds no weights" in capsys.readouterr().err


def test_save_into_a_missing_folder_fails_before_training(tmp_path, capsys):
    path = _model_file(tmp_path, {"class_name": "Dense", "config": {"units": 10, "activation": "softmax"}})
    code = main(["train", path, "--limit", "100", "--save", str(tmp_path / "missing" / "out.json")])
    err = capsys.readouterr().err
    assert code == 2
    assert "does not exist" in err and "missing" in err
    assert "Epoch" not in err  # refused before any training
    assert len(err.strip().splitlines()) == 1


def test_save_into_a_read_only_folder_fails_before_training(tmp_path, capsys):
    import os

    path = _model_file(tmp_path, {"class_name": "Dense", "config": {"units": 10, "activation": "softmax"}})
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):  # root ignores permission bits: use a read-only mount instead
            folder = next((p for p in ("/sys", "/proc") if not _can_create_in(p)), None)
            if folder is None:
                pytest.skip("no read-only folder available to this user")
        code = main(["train", path, "--limit", "100", "--save", os.path.join(str(folder), "out.json")])
        err = capsys.readouterr().err
    finally:
        (tmp_path / "locked").chmod(0o755)
    assert code == 2
    assert "cannot save to" in err and "Epoch" not in err


def _can_create_in(folder):
    import tempfile

    try:
        with tempfile.NamedTemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def test_save_to_a_folder_path_is_refused_before_training(tmp_path, capsys):
    path = _model_file(tmp_path, {"class_name": "Dense", "config": {"units": 10, "activation": "softmax"}})
    assert main(["train", path, "--limit", "100", "--save", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "it is a folder" in err and "Epoch" not in err


def test_a_diverged_run_with_save_saves_the_last_good_weights(tmp_path, capsys):
    import numpy as np

    from visualcnn.engine import load_model

    # A linear output trained with MSE and SGD at the largest allowed rate explodes quickly.
    doc = {"format": "visualcnn.model", "version": 1, "input_shape": [28, 28, 1],
           "layers": [{"class_name": "Flatten", "config": {}}, {"class_name": "Dense", "config": {"units": 10}}],
           "training": {"optimizer": "sgd", "learning_rate": 10.0, "loss": "mean_squared_error",
                        "batch_size": 8, "epochs": 5}}
    path = tmp_path / "explodes.json"
    path.write_text(json.dumps(doc))
    saved = tmp_path / "kept.json"
    code = main(["train", str(path), "--limit", "400", "--save", str(saved)])
    err = capsys.readouterr().err
    assert code == 2
    assert "last good weights were saved to" in err
    model = load_model(saved)
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_a_model_too_big_for_the_machine_is_refused_before_reading_mnist(tmp_path, capsys, monkeypatch):
    from visualcnn.engine import datasets

    monkeypatch.setenv("VISUALCNN_MEMORY_LIMIT", str(2 * 1024 ** 3))
    monkeypatch.setattr(datasets, "load_mnist", lambda *a, **k: pytest.fail("MNIST was read"))
    path = _model_file(tmp_path, {"class_name": "Dense", "config": {"units": 10, "activation": "softmax"}})
    doc = json.loads(open(path).read())
    doc["layers"].insert(-1, {"class_name": "Dense", "config": {"units": 1000000}})
    open(path, "w").write(json.dumps(doc))
    assert main(["train", path]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Training this model needs about") and "2.0 GiB available" in err
    assert "reduce dense's units" in err


def test_schedule_flag_trains_with_cosine_and_the_saved_file_keeps_it(tmp_path, capsys):
    path = _model_file(tmp_path, {"class_name": "Dense", "config": {"units": 10, "activation": "softmax"}},
                       training={"optimizer": "adam", "learning_rate": 0.01, "batch_size": 50, "epochs": 1})
    saved = tmp_path / "trained.json"
    assert main(["train", path, "--limit", "200", "--schedule", "cosine", "--json", "--save", str(saved)]) == 0
    capsys.readouterr()
    training = json.loads(saved.read_text())["training"]
    # the starting rate, not the ~0 the run ended on (which a file would refuse)
    assert training["schedule"] == "cosine" and training["learning_rate"] == pytest.approx(0.01)
    assert main(["evaluate", str(saved), "--json"]) == 0
    with pytest.raises((SystemExit, argparse.ArgumentError)):
        main(["train", path, "--schedule", "linear"])
    assert "invalid choice: 'linear'" in capsys.readouterr().err
