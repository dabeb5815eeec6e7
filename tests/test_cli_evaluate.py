"""`visualcnn evaluate`: bad saved models end in one line naming what to change."""

import subprocess
import sys

from visualcnn.engine import Sequential, layers


def run(*args):
    return subprocess.run([sys.executable, "-m", "visualcnn", *args], capture_output=True, text=True, timeout=120)


def saved(tmp_path, input_shape, units, activation="softmax"):
    model = Sequential([layers.Input(shape=input_shape), layers.Flatten(), layers.Dense(units, activation=activation)])
    model.build()
    path = tmp_path / "saved.json"
    model.save(path)
    return str(path)


def test_wrong_number_of_classes_is_named(tmp_path):
    result = run("evaluate", saved(tmp_path, (28, 28, 1), 3))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == ("error: cannot evaluate this model on MNIST: the last layer Dense 'dense' has 3 "
                                     "outputs, but MNIST has 10 digits: set its units to 10")


def test_wrong_input_shape_is_named(tmp_path):
    result = run("evaluate", saved(tmp_path, (32, 32, 1), 10))
    assert result.returncode == 2 and "MNIST images are 28x28x1" in result.stderr


def test_a_preset_has_no_weights_to_evaluate():
    result = run("evaluate", "seed_cnn")
    assert result.returncode == 2 and "holds no weights" in result.stderr and "train it first" in result.stderr
