"""analysis.weights_compatible: which edits keep the trained weights (the window keeps them)."""

import numpy as np
import pytest

from visualcnn.engine import Sequential, layers as L
from visualcnn.engine.analysis import analyse, weight_layout, weights_compatible


def pipeline(dropout=0.5, activation="relu", filters=8, units=10, extra=(), input_shape=(28, 28, 1), padding="valid"):
    return [L.Conv2D(filters, 3, activation=activation, padding=padding), L.MaxPooling2D(), *extra, L.Flatten(),
            L.Dropout(dropout), L.Dense(units, activation="softmax")]


def report(input_shape=(28, 28, 1), **kwargs):
    return analyse(input_shape, pipeline(**kwargs))


@pytest.mark.parametrize("edit", [dict(dropout=0.2), dict(activation="tanh"), dict(extra=(L.Dropout(0.1),)),
                                  dict(extra=(L.Activation("relu"),))])
def test_edits_that_cannot_change_a_weight_keep_them(edit):
    assert weights_compatible(report(), report(**edit))


@pytest.mark.parametrize("edit", [dict(filters=16), dict(units=12), dict(input_shape=(32, 32, 1)),
                                  dict(padding="same"), dict(extra=(L.Conv2D(4, 1),))])
def test_edits_that_change_a_weight_shape_drop_them(edit):
    assert not weights_compatible(report(), report(**edit))


def test_a_pipeline_with_an_error_is_never_compatible():
    bad = analyse((4, 4, 1), [L.Conv2D(2, 9)])
    assert weight_layout(bad) is None
    assert not weights_compatible(bad, bad)


def test_layout_is_get_weights_order_and_set_weights_fits():
    old = Sequential([L.Input(shape=(28, 28, 1)), *pipeline()])
    new = Sequential([L.Input(shape=(28, 28, 1)), *pipeline(dropout=0.1, activation="tanh")])
    assert weights_compatible(old.analyse(), new.analyse())
    assert [shape for _, _, shape in weight_layout(old.analyse())] == [w.shape for w in old.get_weights()]
    new.set_weights(old.get_weights())
    assert all(np.array_equal(a, b) for a, b in zip(old.get_weights(), new.get_weights()))
