"""Softmax layer: Keras config, any axis or axes, gradients, as a classifier's last layer."""

import numpy as np
import pytest
from layer_checks import analysed, built, check_gradients, keras_output, round_trip, run, trains_in_sequential

from visualcnn.engine import ConfigError, Sequential, layers as L


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def test_keras_defaults_and_config():
    assert L.Softmax().config == {"axis": -1}
    assert L.Softmax().get_config() == {"name": None, "trainable": True, "axis": -1}
    assert L.layer_from_config("Softmax", {"name": "softmax", "trainable": True, "dtype": "float32",
                                           "axis": [1, 2]}).config == {"axis": (1, 2)}
    for layer in (L.Softmax(), L.Softmax(1), L.Softmax([1, 2], name="s")):
        round_trip(layer)


def test_shape_and_receptive_field():
    inference = L.Softmax().infer((None, 5, 4, 3))
    assert inference.output_shape == (None, 5, 4, 3) and inference.params == 0
    assert inference.derivation[0] == "y = exp(x) / sum of exp(x) over channels: each such group sums to 1"
    assert inference.field.size == (1, 1)
    assert L.Softmax(1).infer((None, 5, 4, 3)).field.size == (5, 1)  # mixes the whole column
    assert L.Softmax([1, 2]).infer((None, 5, 4, 3)).field.size == (5, 4)


@pytest.mark.parametrize("axis,numpy_axis", [(-1, -1), (3, 3), (1, 1), (2, 2), ([1, 2], (1, 2)), ([-1, 1], (1, 3))])
def test_forward_and_gradients(axis, numpy_axis):
    layer = built(L.Softmax(axis), (4, 3, 5))
    x = np.random.default_rng(0).standard_normal((2, 4, 3, 5)).astype(np.float32) * 2
    np.testing.assert_allclose(run(layer, x), _softmax(x.astype(np.float64), numpy_axis), rtol=1e-5, atol=1e-7)
    check_gradients(layer, x, eps=1e-2)


def test_large_values_do_not_overflow():
    layer = built(L.Softmax(1), (3, 2))
    x = np.array([[[1000.0, -1000.0], [1001.0, 0.0], [999.0, 1000.0]]], np.float32)
    y = run(layer, x)
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-6)


def test_as_the_last_layer_of_a_classifier():
    # Dense(linear) + Softmax() trains like Dense(softmax): same loss and gradients
    a = Sequential([L.Input(shape=(6,)), L.Dense(4), L.Softmax()])
    b = Sequential([L.Input(shape=(6,)), L.Dense(4, activation="softmax")])
    for m in (a, b):
        m.build(seed=2)
        m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(1).standard_normal((8, 6)).astype(np.float32)
    y = np.random.default_rng(2).integers(0, 4, 8)
    (la, ga), (lb, gb) = a.compute_gradients(x, y), b.compute_gradients(x, y)
    assert la == pytest.approx(lb, rel=1e-5)
    for u, v in zip(ga, gb):
        np.testing.assert_allclose(u, v, rtol=1e-4, atol=1e-6)


def test_in_a_sequential_and_the_analysis():
    trains_in_sequential([L.Softmax(), L.Conv2D(2, 1, activation="tanh"), L.Softmax([1, 2])])
    analysed((8, 8, 1), [L.Conv2D(4, 3), L.Softmax(1), L.Flatten(), L.Dense(2), L.Softmax()])


@pytest.mark.parametrize("make,message", [
    (lambda: L.Softmax(0).infer((None, 4)), "Softmax: axis 0 is the batch axis"),
    (lambda: L.Softmax(-2, name="s").infer((None, 4)), "Softmax 's': axis -2 is the batch axis"),
    (lambda: L.Softmax(4).infer((None, 5, 4, 3)), "axis 4 is out of range for an input with 4 axes"),
    (lambda: L.Softmax([1, -3]).infer((None, 5, 4, 3)), "axis 1 is listed twice in [1, -3]"),
    (lambda: L.Softmax("last"), "argument 'axis' expected an integer axis or a list of axes"),
    (lambda: L.Softmax(1.0), "argument 'axis' expected an integer axis or a list of axes"),
])
def test_bad_configs(make, message):
    with pytest.raises(ConfigError) as info:
        make()
    assert message in str(info.value)


@pytest.mark.parametrize("axis", [-1, 1, 2, [1, 2]])
def test_live_keras(axis):
    x = np.random.default_rng(3).standard_normal((2, 4, 5, 3)).astype(np.float32) * 3
    ours = run(built(L.Softmax(axis), (4, 5, 3)), x)
    np.testing.assert_allclose(ours, keras_output("Softmax", {"axis": axis}, x), rtol=1e-5, atol=1e-7)


def test_a_softmax_layer_over_the_classes_is_ready_to_train_on_mnist():
    from visualcnn.engine.analysis import analyse
    from visualcnn.engine.recipe import classifier_problem

    head = [L.Flatten(), L.Dense(10)]
    assert classifier_problem(analyse((28, 28, 1), [*head, L.Softmax()])) is None
    assert classifier_problem(analyse((28, 28, 1), [*head, L.Softmax([1])])) is None
    problem = classifier_problem(analyse((28, 28, 1), head))
    assert "expects probabilities: set activation='softmax'" in problem
