"""Live cross-check against real Keras 3: random Functional models built in Keras from a seed,
read back from to_json(), give Keras's output shapes, parameter counts and summary text.

Skipped where Keras is not installed (CI). The models draw from every layer class VisualCNN
registers that Keras also has, so a newly added class is checked here with no edit.
VISUALCNN_KERAS_SEED=<n> picks another set of models.
"""

import importlib.util
import os
import random
import sys
from pathlib import Path

import pytest

keras = pytest.importorskip("keras")

from visualcnn.engine import read_model_file  # noqa: E402
from visualcnn.engine.layers import LAYER_CLASSES  # noqa: E402

from test_keras_functional import check_against_keras  # noqa: E402 (pytest puts this folder on sys.path)

_spec = importlib.util.spec_from_file_location(
    "random_functional", Path(__file__).parent / "keras_fixtures" / "random_functional.py")
random_functional = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = random_functional
_spec.loader.exec_module(random_functional)

SEED = int(os.environ.get("VISUALCNN_KERAS_SEED", "7"))
COUNT = 50
CLASSES = [c for c in LAYER_CLASSES if hasattr(keras.layers, c)]


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")  # rich cuts summary lines at the console width


@pytest.mark.parametrize("index", range(COUNT))
def test_random_functional_model_matches_keras(index):
    rng = random.Random(SEED * 100_003 + index)
    model = random_functional.random_model(keras, rng, index, CLASSES, must_use=CLASSES[index % len(CLASSES)])
    case = random_functional.case(keras, model, [76, rng.choice([40, 47, 55, 60, 88, 108, 130])],
                                  random_functional.summary_options(rng, model))
    check_against_keras(case)


@pytest.mark.parametrize("index", range(20))
def test_random_sequential_model_matches_keras(index):
    rng = random.Random(SEED * 100_019 + index)
    model = random_functional.random_sequential(keras, rng, index, CLASSES)
    check_against_keras(random_functional.case(keras, model, [76, rng.choice([40, 55, 88, 130])],
                                               random_functional.summary_options(rng, model)))


def test_linear_functional_model_prints_the_input_row_as_keras_does(capsys):
    keras.backend.clear_session()
    inputs = keras.Input((12, 12, 1))
    outputs = keras.layers.Dense(3)(keras.layers.Flatten()(keras.layers.Conv2D(4, 3)(inputs)))
    model = keras.Model(inputs, outputs)
    lines = []
    model.summary(line_length=76, print_fn=lambda s, line_break=True: lines.append(s))
    ours = []
    read_model_file(model.to_json()).model.summary(line_length=76, print_fn=ours.append)
    assert "input_layer (InputLayer)" in lines[0]
    assert ours == lines  # one string with its final newline, as Keras hands print_fn


@pytest.mark.parametrize("columns,line_length", [("80", 120), ("60", None), ("100", 40)])
def test_summary_is_cut_at_the_console_width_as_keras_does(monkeypatch, columns, line_length):
    monkeypatch.setenv("COLUMNS", columns)
    keras.backend.clear_session()
    inputs = keras.Input((12, 12, 1), name="a_rather_long_input_name_for_the_title_and_cells")
    a = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    b = keras.layers.Conv2D(4, 1, name="projection_with_a_very_long_name_indeed")(inputs)
    outputs = keras.layers.Dense(3)(keras.layers.Flatten()(keras.layers.Add()([a, b])))
    model = keras.Model(inputs, outputs, name="a_model_name_long_enough_to_wrap_in_a_narrow_console_" * 2)
    theirs, ours = [], []
    model.summary(line_length=line_length, print_fn=lambda s, line_break=True: theirs.append(s))
    read_model_file(model.to_json()).model.summary(line_length=line_length, print_fn=ours.append)
    assert ours == theirs


@pytest.mark.parametrize("index", range(15))
def test_summary_options_match_keras(index):
    """show_trainable, positions and layer_range, on random models with some frozen layers."""
    rng = random.Random(SEED * 100_043 + index)
    make = random_functional.random_sequential if index % 3 == 0 else random_functional.random_model
    model = make(keras, rng, index, CLASSES)
    for layer in model.layers:
        if rng.random() < 0.3:
            layer.trainable = False
    ours = read_model_file(model.to_json()).model
    names = [layer.name for layer in model.layers]
    sequential_like = "Connected to" not in _keras_text(model, line_length=120)
    ends = sorted(rng.sample(range(15, 95, 8), 2 if sequential_like else 3))  # >= 4 characters per column
    options = [{"show_trainable": True, "line_length": rng.choice([None, 60, 100])},
               {"positions": [e / 100 for e in ends] + [1.0], "line_length": 90},
               {"layer_range": [rng.choice(names), rng.choice(names)], "line_length": 76}]
    for kwargs in options:
        printed = []
        ours.summary(print_fn=printed.append, **kwargs)
        assert printed == [_keras_text(model, **kwargs)], kwargs


def _keras_text(model, **kwargs):
    out = []
    model.summary(print_fn=lambda s, line_break=True: out.append(s), **kwargs)
    return out[0]


@pytest.mark.parametrize("positions,line_length", [([0.41, 0.69, 0.74, 1.0], 90), ([0.1, 0.2, 0.3, 1.0], 40)])
def test_narrowest_columns_match_keras(positions, line_length):
    keras.backend.clear_session()
    inputs = keras.Input((7, 16))
    outputs = keras.layers.Add()([keras.layers.Dense(4)(inputs), keras.layers.Dense(4)(inputs)])
    model = keras.Model(inputs, outputs)
    ours = read_model_file(model.to_json()).model
    try:
        theirs = _keras_text(model, positions=positions, line_length=line_length)
    except ValueError as exc:  # Keras refuses a column under 4 characters; so do we
        with pytest.raises(ValueError, match="Insufficient console width"):
            ours.summary(positions=positions, line_length=line_length, print_fn=print)
        assert "Insufficient console width" in str(exc)
        return
    printed = []
    ours.summary(positions=positions, line_length=line_length, print_fn=printed.append)
    assert printed == [theirs]


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "sgd_momentum", "rmsprop", "rmsprop_momentum"])
def test_summary_after_training_counts_the_optimizer_as_keras_does(optimizer):
    import numpy as np

    from visualcnn.engine import optimizers

    name, _, momentum = optimizer.partition("_")
    keras.backend.clear_session()
    inputs = keras.Input((6, 6, 1))
    a = keras.layers.Conv2D(2, 3, padding="same")(inputs)
    b = keras.layers.BatchNormalization()(keras.layers.Conv2D(2, 1)(inputs))
    frozen = keras.layers.Dense(3)
    frozen.trainable = False
    outputs = keras.layers.Dense(2)(frozen(keras.layers.Flatten()(keras.layers.Add()([a, b]))))
    model = keras.Model(inputs, outputs)
    ours = read_model_file(model.to_json()).model
    kwargs = {"momentum": 0.9} if momentum else {}
    model.compile({"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD,
                   "rmsprop": keras.optimizers.RMSprop}[name](**kwargs), "mse")
    ours.compile(optimizers.get(name, **kwargs), "mse")
    x, y = np.zeros((4, 6, 6, 1), np.float32), np.zeros((4, 2), np.float32)
    before_theirs, before_ours = [], []
    model.summary(line_length=76, print_fn=lambda s, line_break=True: before_theirs.append(s))
    ours.summary(line_length=76, print_fn=before_ours.append)
    assert before_ours == before_theirs and "Optimizer params" not in before_ours[0]  # compiled, not yet built
    for m in (model, ours):
        m.fit(x, y, epochs=1, batch_size=4, verbose=0)
    theirs, printed = [], []
    model.summary(line_length=76, print_fn=lambda s, line_break=True: theirs.append(s))
    ours.summary(line_length=76, print_fn=printed.append)
    assert "Optimizer params" in theirs[0] and printed == theirs
