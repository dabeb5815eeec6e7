"""predict / evaluate through the two ping-pong arenas: same values as the per-layer path,
and only two layers' buffers alive."""

import numpy as np
import pytest

from visualcnn.engine import Sequential, layers as L


def _bn_network():
    return Sequential([L.Input(shape=(12, 12, 1)), L.Conv2D(8, 3, padding="same"), L.BatchNormalization(),
                       L.Activation("relu"), L.Conv2D(8, 3, padding="same"), L.BatchNormalization(),
                       L.Activation("relu"), L.MaxPooling2D(), L.Dropout(0.3), L.Flatten(),
                       L.Dense(16), L.Activation("relu"), L.Dense(5, activation="softmax")])


def _every_kind():
    return Sequential([L.Input(shape=(10, 10, 2)), L.Conv2D(6, 3, activation="tanh"), L.AveragePooling2D(2),
                       L.DepthwiseConv2D(2, activation="relu"), L.GlobalMaxPooling2D(keepdims=True), L.Flatten(),
                       L.Dense(7), L.BatchNormalization(), L.Activation("sigmoid"), L.Dense(3)])


@pytest.mark.parametrize("make", [_bn_network, _every_kind])
def test_predict_matches_the_layer_by_layer_outputs(make):
    model = make()
    model.build(seed=1)
    shape = (10, *model.input_shape)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    # activations() keeps every layer's own buffer (no arenas, no folded relu)
    reference = np.concatenate([list(model.activations(x[i:i + 1]).values())[-1] for i in range(10)])
    for batch_size in (10, 4, 1):  # 4: a short last batch
        np.testing.assert_allclose(model.predict(x, batch_size=batch_size), reference, rtol=1e-5, atol=1e-6)


def test_evaluate_through_the_arenas_matches_a_numpy_loss():
    model = _bn_network()
    model.build(seed=2)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((9, 12, 12, 1)).astype(np.float32), rng.integers(0, 5, 9)
    probs = model.predict(x, batch_size=9)
    loss, acc = model.evaluate(x, y, batch_size=4)
    assert loss == pytest.approx(-np.log(probs[np.arange(9), y]).mean(), rel=1e-5)
    assert acc == pytest.approx((probs.argmax(1) == y).mean())


def test_only_two_layers_buffers_stay_alive():
    model = _bn_network()
    model.build(seed=4)
    n = 200
    x = np.random.default_rng(5).standard_normal((n, 12, 12, 1)).astype(np.float32)
    model.predict(x, batch_size=n)
    arenas = model._local.arenas
    held = sum(a.nbytes() for a in arenas)
    one_map = n * 12 * 12 * 8 * 4  # a conv / BatchNormalization output
    # four full-size maps (conv, BN, conv, BN) would be alive without the arenas
    assert one_map * 2 <= held < one_map * 3
