"""Finite-difference gradient checks: every layer type and every loss.

float32 engine, central differences with a step large enough for float32 (1e-2) on
smooth activations (tanh/sigmoid), so kinks (relu, max ties) are avoided.
"""

import numpy as np
import pytest

from visualcnn.engine import Sequential, layers as L, losses

EPS = 1e-2


def _fd_check(model, x, y, n_checks=12, seed=0, rtol=3e-2, eps=EPS):
    """Compare compute_gradients with central differences on a few entries per weight."""
    def reseed():
        for layer in model.layers:
            if isinstance(layer, L.Dropout):
                layer.reseed(123)

    reseed()
    loss, grads = model.compute_gradients(x, y)
    rng = np.random.default_rng(seed)
    for w, g in zip(model.trainable_weights, grads):
        assert g.shape == w.shape
        scale = max(np.abs(g).max(), 1e-3)
        flat_w, flat_g = w.reshape(-1), g.reshape(-1)
        for i in rng.choice(flat_w.size, size=min(n_checks, flat_w.size), replace=False):
            old = flat_w[i]
            flat_w[i] = old + eps
            reseed()
            up, _ = model.compute_gradients(x, y)
            flat_w[i] = old - eps
            reseed()
            down, _ = model.compute_gradients(x, y)
            flat_w[i] = old
            numeric = (up - down) / (2 * eps)
            assert abs(numeric - flat_g[i]) <= rtol * scale, (w.shape, i, numeric, flat_g[i])


def _input_grad_check(model, x, class_index=1, n_checks=8):
    """input_gradients (inference mode) against central differences of the class score."""
    g = model.input_gradients(x, class_index)
    last = model.layers[-1]
    def score(xx):
        acts = model.activations(xx)
        out = list(acts.values())[-1]
        if last.config.get("activation") == "softmax":
            out = np.log(out)  # logit up to a per-row constant: compare differences of log-probs
        return out[..., class_index].sum()
    if last.config.get("activation") == "softmax":
        return  # the score is the logit; log-softmax differs by logsumexp, checked via PyTorch instead
    rng = np.random.default_rng(1)
    flat = x.reshape(-1)
    scale = max(np.abs(g).max(), 1e-3)
    for i in rng.choice(flat.size, size=n_checks, replace=False):
        old = flat[i]
        flat[i] = old + EPS
        up = score(x)
        flat[i] = old - EPS
        down = score(x)
        flat[i] = old
        assert abs((up - down) / (2 * EPS) - g.reshape(-1)[i]) <= 3e-2 * scale


ARCHITECTURES = {
    "conv_valid": [L.Conv2D(3, 3, activation="tanh"), L.Flatten(), L.Dense(4, activation="softmax")],
    "conv_same_strided": [L.Conv2D(3, 3, strides=2, padding="same", activation="tanh"), L.Flatten(),
                          L.Dense(4, activation="softmax")],
    "conv_dilated_same": [L.Conv2D(2, 3, dilation_rate=2, padding="same", activation="sigmoid"), L.Flatten(),
                          L.Dense(4, activation="softmax")],
    "conv_gemm_path": [L.Conv2D(40, 3, activation="tanh"), L.Conv2D(3, 3, padding="same", activation="tanh"),
                       L.GlobalAveragePooling2D(), L.Dense(4, activation="softmax")],
    "depthwise": [L.DepthwiseConv2D(3, depth_multiplier=2, strides=2, padding="same", activation="tanh"),
                  L.Flatten(), L.Dense(4, activation="softmax")],
    "separable": [L.SeparableConv2D(4, 3, depth_multiplier=2, padding="same", activation="tanh"),
                  L.GlobalMaxPooling2D(), L.Dense(4, activation="softmax")],
    "transpose_same": [L.Conv2DTranspose(3, 3, strides=2, padding="same", activation="tanh"), L.Flatten(),
                       L.Dense(4, activation="softmax")],
    "transpose_valid": [L.Conv2DTranspose(2, 3, strides=2, activation="tanh"), L.GlobalAveragePooling2D(),
                        L.Dense(4, activation="softmax")],
    "maxpool_same": [L.Conv2D(3, 2, activation="tanh"), L.MaxPooling2D(2, padding="same"), L.Flatten(),
                     L.Dense(4, activation="softmax")],
    "avgpool_same": [L.Conv2D(3, 2, activation="tanh"), L.AveragePooling2D(3, strides=2, padding="same"),
                     L.Flatten(), L.Dense(4, activation="softmax")],
    "batchnorm_dropout": [L.Conv2D(3, 3, activation="tanh"), L.BatchNormalization(), L.Flatten(),
                          L.Dropout(0.3), L.Dense(4, activation="softmax")],
    "activation_layers": [L.Flatten(), L.Dense(6), L.Activation("leaky_relu"), L.Dense(5, activation="elu"),
                          L.Dense(5, activation="gelu"), L.Dense(5, activation="silu"), L.Dense(4),
                          L.Activation("softmax")],
}


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_weight_gradients_match_finite_differences(name):
    model = Sequential([L.Input(shape=(7, 6, 2)), *ARCHITECTURES[name]])
    model.build(seed=3)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 7, 6, 2)).astype(np.float32)
    y = rng.integers(0, 4, 5)
    # max-based layers: a smaller step so the winner of a window does not change
    _fd_check(model, x, y, eps=2e-3 if name in ("maxpool_same", "separable") else EPS)


@pytest.mark.parametrize("name", ["conv_same_strided", "depthwise", "transpose_same", "avgpool_same"])
def test_input_gradients_match_finite_differences(name):
    layers = [layer for layer in ARCHITECTURES[name][:-1]] + [L.Dense(4, activation="tanh")]
    fresh = [L.layer_from_config(l.class_name, {k: v for k, v in l.get_config().items() if k != "name"})
             for l in layers]
    model = Sequential([L.Input(shape=(7, 6, 2)), *fresh])
    model.build(seed=4)
    x = np.random.default_rng(2).standard_normal((1, 7, 6, 2)).astype(np.float32)
    _input_grad_check(model, x)


@pytest.mark.parametrize("loss_name,fused_activation", [
    ("sparse_categorical_crossentropy", "softmax"), ("categorical_crossentropy", "softmax"),
    ("binary_crossentropy", "sigmoid"), ("mean_squared_error", None),
    ("sparse_categorical_crossentropy", None), ("categorical_crossentropy", None), ("binary_crossentropy", None),
])
def test_loss_gradients(loss_name, fused_activation):
    rng = np.random.default_rng(5)
    loss = losses.get(loss_name)
    logits = rng.standard_normal((6, 4))
    if fused_activation == "sigmoid" or (fused_activation is None and loss_name == "binary_crossentropy"):
        f = lambda z: 1 / (1 + np.exp(-z))
    else:
        f = lambda z: np.exp(z - z.max(-1, keepdims=True)) / np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True)
    if loss.sparse:
        y = rng.integers(0, 4, 6)
    elif loss_name == "categorical_crossentropy":
        y = np.eye(4)[rng.integers(0, 4, 6)]
    else:
        y = rng.random((6, 4)).round()
    if fused_activation:
        # gradient with respect to the logits
        def value(z):
            return loss.compute(f(z).astype(np.float32), y, np.empty((6, 4), np.float32), logits=z.astype(np.float32))
        point = logits
        grad = np.empty((6, 4), np.float32)
        loss.compute(f(point).astype(np.float32), y, grad, logits=point.astype(np.float32))
    else:
        def value(p):
            return loss.compute(p.astype(np.float32), y, np.empty((6, 4), np.float32))
        point = f(logits) if loss_name != "mean_squared_error" else logits
        grad = np.empty((6, 4), np.float32)
        loss.compute(point.astype(np.float32), y, grad)
    eps = 1e-3
    for i in range(point.size):
        up, down = point.copy(), point.copy()
        up.reshape(-1)[i] += eps
        down.reshape(-1)[i] -= eps
        numeric = (value(up) - value(down)) / (2 * eps)
        assert abs(numeric - grad.reshape(-1)[i]) < 2e-3 * max(1.0, abs(numeric)), (i, numeric, grad.reshape(-1)[i])


def test_fused_softmax_crossentropy_is_stable_for_huge_logits():
    loss = losses.get("sparse_categorical_crossentropy")
    z = np.array([[1000.0, -1000.0, 0.0]], np.float32)
    grad = np.empty((1, 3), np.float32)
    value = loss.compute(np.array([[1.0, 0.0, 0.0]], np.float32), np.array([1]), grad, logits=z)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    assert value == pytest.approx(-np.log(1e-7), rel=1e-5)  # clipped like Keras
    np.testing.assert_allclose(grad, [[1.0, -1.0, 0.0]], atol=1e-6)
