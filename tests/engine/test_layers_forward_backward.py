"""Layer forward passes against plain-numpy definitions, and training/inference modes."""

import numpy as np
import pytest

from visualcnn.engine import Sequential, activations, initializers, layers as L
from visualcnn.engine.layers.arguments import ACTIVATIONS, INITIALIZERS


def _model(in_shape, *layers, seed=0):
    m = Sequential([L.Input(shape=in_shape), *layers])
    m.build(seed=seed)
    return m


def _conv_ref(x, k, b, stride, dil, pad):
    """Plain loops over a zero-padded input; pad = (top, bottom, left, right)."""
    xp = np.pad(x.astype(np.float64), ((0, 0), (pad[0], pad[1]), (pad[2], pad[3]), (0, 0)))
    kh, kw, _, co = k.shape
    oh = (xp.shape[1] - dil * (kh - 1) - 1) // stride + 1
    ow = (xp.shape[2] - dil * (kw - 1) - 1) // stride + 1
    out = np.zeros((x.shape[0], oh, ow, co))
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, i * dil:i * dil + (oh - 1) * stride + 1:stride, j * dil:j * dil + (ow - 1) * stride + 1:stride]
            out += patch @ k[i, j]
    return out + b


@pytest.mark.parametrize("size,k,stride,dil,padding,pads", [
    (7, 3, 1, 1, "valid", (0, 0, 0, 0)),
    (7, 3, 2, 1, "same", (1, 1, 1, 1)),
    (8, 3, 2, 1, "same", (0, 1, 0, 1)),   # odd padding pixel at the end, as TensorFlow
    (8, 4, 3, 1, "same", (1, 2, 1, 2)),
    (9, 3, 1, 2, "same", (2, 2, 2, 2)),
])
def test_conv2d_forward_matches_reference(size, k, stride, dil, padding, pads):
    m = _model((size, size, 2), L.Conv2D(5, k, strides=stride, dilation_rate=dil, padding=padding))
    x = np.random.default_rng(0).standard_normal((3, size, size, 2)).astype(np.float32)
    m.layers[0].weights[1][...] = np.arange(5)
    ref = _conv_ref(x, m.layers[0].weights[0], m.layers[0].weights[1], stride, dil, pads)
    np.testing.assert_allclose(m.predict(x), ref, rtol=1e-5, atol=1e-5)


def test_pooling_same_padding_semantics():
    x = np.arange(1, 10, dtype=np.float32).reshape(1, 3, 3, 1)
    avg = _model((3, 3, 1), L.AveragePooling2D(2, padding="same")).predict(x)[0, :, :, 0]
    # windows at the end hold only real cells: averages over 4, 2, 2, 1 values
    np.testing.assert_allclose(avg, [[3.0, 4.5], [7.5, 9.0]])
    mx = _model((3, 3, 1), L.MaxPooling2D(2, padding="same")).predict(-x)[0, :, :, 0]
    np.testing.assert_allclose(mx, [[-1.0, -3.0], [-7.0, -9.0]])  # padding is -inf, never chosen


def test_global_pooling_and_flatten_order():
    x = np.random.default_rng(1).standard_normal((2, 3, 4, 5)).astype(np.float32)
    np.testing.assert_allclose(_model((3, 4, 5), L.GlobalAveragePooling2D()).predict(x), x.mean(axis=(1, 2)), rtol=1e-5)
    np.testing.assert_allclose(_model((3, 4, 5), L.GlobalMaxPooling2D(keepdims=True)).predict(x),
                               x.max(axis=(1, 2), keepdims=True))
    np.testing.assert_array_equal(_model((3, 4, 5), L.Flatten()).predict(x), x.reshape(2, -1))


def test_dense_on_last_axis():
    m = _model((3, 4), L.Dense(2, activation="relu"))
    x = np.random.default_rng(2).standard_normal((5, 3, 4)).astype(np.float32)
    kernel, bias = m.layers[0].weights
    np.testing.assert_allclose(m.predict(x), np.maximum(x @ kernel + bias, 0), rtol=1e-5, atol=1e-6)


def test_dropout_inverted_in_training_only():
    m = _model((1000,), L.Dropout(0.25))
    m.compile(optimizer="sgd", loss="mse")
    x = np.ones((4, 1000), np.float32)
    np.testing.assert_array_equal(m.predict(x), x)
    acts = m.layers[0].forward(x, m._train_ctxs[0], training=True)
    assert set(np.unique(acts)) <= {0.0, np.float32(1 / 0.75)}
    assert 0.2 < (acts == 0).mean() < 0.3


def test_batchnorm_training_and_inference_statistics():
    m = _model((6,), L.BatchNormalization())
    bn = m.layers[0]
    x = np.random.default_rng(3).normal(5.0, 2.0, (64, 6)).astype(np.float32)
    y = bn.forward(x, m._train_ctxs[0], training=True)
    np.testing.assert_allclose(y.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(y.var(0), x.var(0) / (x.var(0) + 1e-3), rtol=1e-4)
    gamma, beta, mean, var = bn.weights
    np.testing.assert_allclose(mean, 0.01 * x.mean(0), rtol=1e-5)        # momentum 0.99
    np.testing.assert_allclose(var, 0.99 + 0.01 * x.var(0), rtol=1e-5)   # biased batch variance
    np.testing.assert_allclose(m.predict(x), (x - mean) / np.sqrt(var + 1e-3), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_every_activation_forward_and_derivative(name):
    act = activations.get(name)
    x = np.linspace(-4, 4, 24, dtype=np.float32).reshape(3, 8) + 0.013
    y = act(x)
    assert y.shape == x.shape and np.all(np.isfinite(y))
    dy = np.random.default_rng(4).standard_normal(x.shape).astype(np.float32)
    dx = act.backward(x, y, dy, np.empty_like(x))
    eps = 1e-3
    x64 = x.astype(np.float64)
    numeric = np.zeros_like(x64)
    for i in range(x.size):
        up, down = x64.copy(), x64.copy()
        up.reshape(-1)[i] += eps
        down.reshape(-1)[i] -= eps
        numeric.reshape(-1)[i] = ((act(up.astype(np.float32)) - act(down.astype(np.float32))) * dy).sum() / (2 * eps)
    np.testing.assert_allclose(dx, numeric, rtol=2e-2, atol=2e-2)


def test_activation_values_match_keras_definitions():
    x = np.array([[-2.0, 0.5, 3.0]], np.float32)
    np.testing.assert_allclose(activations.get("leaky_relu")(x), [[-0.4, 0.5, 3.0]])  # slope 0.2
    np.testing.assert_allclose(activations.get("hard_sigmoid")(x), [[1 / 6, 0.5 + 0.5 / 6, 1.0]], rtol=1e-6)
    np.testing.assert_allclose(activations.get("softmax")(x).sum(), 1.0, rtol=1e-6)


@pytest.mark.parametrize("class_name", sorted(INITIALIZERS))
def test_every_initializer(class_name):
    snake = INITIALIZERS[class_name][0]
    values = initializers.initialize(snake, (3, 3, 4, 8), np.random.default_rng(0))
    assert values.dtype == np.float32 and values.shape == (3, 3, 4, 8)
    if snake == "glorot_uniform":
        limit = np.sqrt(6 / (3 * 3 * 4 + 3 * 3 * 8))  # conv fans include the receptive field
        assert np.abs(values).max() <= limit and np.abs(values).max() > 0.9 * limit


def test_glorot_kernels_zero_biases_seeded():
    a = _model((5, 5, 1), L.Conv2D(4, 3), L.Flatten(), L.Dense(3), seed=7)
    b = _model((5, 5, 1), L.Conv2D(4, 3), L.Flatten(), L.Dense(3), seed=7)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert not a.get_weights()[1].any() and not a.get_weights()[3].any()
