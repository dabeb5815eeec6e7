"""Checks every layer test runs: config round trip, gradients by central differences,
a Sequential that trains, the builder's analysis, and (when installed) live Keras.

Imported by the test files next to it (pytest puts this folder on sys.path).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from visualcnn.engine import Sequential, layers as L
from visualcnn.engine.analysis import analyse
from visualcnn.engine.layers.base import Context


def round_trip(layer) -> None:
    """get_config -> from_config gives the same config, full and compact; both go
    through the registry as a file would."""
    for compact in (False, True):
        config = layer.get_config(compact=compact)
        again = L.layer_from_config(layer.class_name, config)
        assert again.get_config() == layer.get_config()
        assert again.get_config(compact=compact) == config


def built(layer, in_shape: tuple, seed: int = 0):
    """The layer built for a batch shape (None, *in_shape), with random weights drawn from
    `seed` (so a PReLU's zero-initialised alpha is not a special case)."""
    rng = np.random.default_rng(seed)
    layer.build((None, *in_shape), rng)
    for w in layer.weights:
        w[...] = rng.uniform(0.1, 0.6, w.shape)
    return layer


def run(layer, x: np.ndarray, training: bool = False) -> np.ndarray:
    return np.array(layer.forward(x, Context(), training=training))


def check_gradients(layer, x: np.ndarray, eps: float = 1e-2, rtol: float = 2e-2, n_checks: int = 40,
                    seed: int = 0) -> None:
    """dx and every weight gradient against central differences of loss = sum(y * r).

    Also checks the contract that a layer never writes into its input or the dy it is
    given (forks share them). float32 engine: eps 1e-2 and a tolerance relative to the
    largest gradient; callers keep inputs away from kinks (relu's 0, a max tie).
    """
    rng = np.random.default_rng(seed)
    ctx = Context()
    x_copy = x.copy()
    y = layer.forward(x, ctx, training=True)
    r = rng.standard_normal(y.shape).astype(np.float32)
    r_copy = r.copy()
    dx = layer.backward(r, ctx, need_dx=True)
    np.testing.assert_array_equal(x, x_copy, err_msg="forward or backward wrote into the input x")
    np.testing.assert_array_equal(r, r_copy, err_msg="backward wrote into the dy it was given")
    assert dx.shape == x.shape and dx.dtype == np.float32
    dx = np.array(dx)
    grads = {spec.name: np.array(ctx.grads[spec.name]) for spec in layer.weight_specs if spec.trainable}

    def loss() -> float:
        out = layer.forward(x, Context(), training=True)
        return float((out.astype(np.float64) * r).sum())

    def compare(array: np.ndarray, analytic: np.ndarray, what: str) -> None:
        flat, flat_g = array.reshape(-1), analytic.reshape(-1)
        scale = max(float(np.abs(flat_g).max()), 1e-3)
        for i in rng.choice(flat.size, size=min(n_checks, flat.size), replace=False):
            old = flat[i]
            flat[i] = old + eps
            up = loss()
            flat[i] = old - eps
            down = loss()
            flat[i] = old
            numeric = (up - down) / (2 * eps)
            assert abs(numeric - flat_g[i]) <= rtol * scale, (what, i, numeric, flat_g[i])

    compare(x, dx, "dx")
    for spec, w in zip(layer.weight_specs, layer.weights):
        if spec.trainable:
            compare(w, grads[spec.name], spec.name)

    # need_dx=False still fills the weight gradients, and returns None
    ctx2 = Context()
    layer.forward(x, ctx2, training=True)
    assert layer.backward(r, ctx2, need_dx=False) is None
    for name, g in grads.items():
        np.testing.assert_allclose(ctx2.grads[name], g, rtol=1e-6, atol=1e-7)


def trains_in_sequential(middle: list, in_shape: tuple = (8, 8, 2), classes: int = 3, seed: int = 0) -> Sequential:
    """Conv2D -> the layers under test -> Flatten -> Dense softmax, compiled, fitted two
    epochs of two steps; the loss must be finite and every trainable weight must move."""
    model = Sequential([L.Input(shape=in_shape), L.Conv2D(4, 3, padding="same", activation="tanh"), *middle,
                        L.Flatten(), L.Dense(classes, activation="softmax")])
    model.build(seed=seed)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((16, *in_shape)).astype(np.float32)
    y = rng.integers(0, classes, 16)
    before = [w.copy() for w in model.trainable_weights]
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    losses = history.history["loss"]
    assert len(losses) == 2 and all(np.isfinite(losses))
    for old, new in zip(before, model.trainable_weights):
        assert not np.array_equal(old, new)
    assert model.predict(x).shape == (16, classes)
    # predict streams through two shared arenas; activations keeps every layer's output
    np.testing.assert_allclose(model.predict(x[:5]), list(model.activations(x[:5]).values())[-1], rtol=1e-5, atol=1e-6)
    return model


def analysed(in_shape: tuple, layers: list):
    """The builder's analysis of Input -> layers: every row ok; returns the report."""
    report = analyse(in_shape, layers)
    assert report.error is None, report.error
    return report


def live_keras():
    """Keras 3 on the torch backend, or skip (CI has neither; /tmp/venvC has both)."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


def keras_output(class_name: str, config: dict, x: np.ndarray, weights: list | None = None) -> np.ndarray:
    """The real Keras layer's output for x (its weights set to `weights` when given)."""
    keras = live_keras()
    layer = getattr(keras.layers, class_name)(**config)
    layer.build(x.shape)
    if weights is not None:
        layer.set_weights(weights)
    return np.asarray(keras.ops.convert_to_numpy(layer(x)))


def keras_shape_and_params(class_name: str, config: dict, in_shape: tuple) -> tuple[tuple, int]:
    keras = live_keras()
    layer = getattr(keras.layers, class_name)(**config)
    out = layer(keras.Input(in_shape))
    return tuple(out.shape), layer.count_params()


def keras_gradients(class_name: str, config: dict, x: np.ndarray, dy: np.ndarray,
                    weights: list | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
    """(dx, weight gradients) of sum(layer(x) * dy) from real Keras on the torch backend
    (torch autograd), for comparing our backward pass."""
    keras = live_keras()
    torch = pytest.importorskip("torch")
    layer = getattr(keras.layers, class_name)(**config)
    layer.build(x.shape)
    if weights is not None:
        layer.set_weights(weights)
    xt = torch.tensor(x, requires_grad=True)
    (layer(xt) * torch.tensor(dy)).sum().backward()
    return xt.grad.numpy(), [w.value.grad.numpy() for w in layer.weights]


def compare_with_keras_gradients(layer, class_name: str, config: dict, x: np.ndarray, seed: int = 0,
                                 rtol: float = 1e-5, atol: float = 1e-6) -> None:
    """Our forward output, dx and weight gradients against Keras/torch for the same weights."""
    dy = np.random.default_rng(seed).standard_normal(layer.infer((None, *x.shape[1:])).output_shape[1:])
    dy = np.broadcast_to(dy, (x.shape[0], *dy.shape)).astype(np.float32).copy()
    keras_dx, keras_grads = keras_gradients(class_name, config, x, dy, weights=[w.copy() for w in layer.weights])
    ctx = Context()
    np.testing.assert_allclose(layer.forward(x, ctx, training=True), keras_output(class_name, config, x,
                               weights=[w.copy() for w in layer.weights]), rtol=rtol, atol=atol)
    np.testing.assert_allclose(layer.backward(dy, ctx), keras_dx, rtol=rtol, atol=atol)
    for spec, g in zip(layer.weight_specs, keras_grads):
        np.testing.assert_allclose(ctx.grads[spec.name], g, rtol=rtol, atol=atol * 10)
