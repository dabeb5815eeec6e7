"""Conv2D(relu) -> MaxPooling2D: the pool applies relu's derivative and the conv skips its
own pass (layers/relu_handoff.py). Gradients must equal the ordinary passes exactly, and
the hand-off must really happen (or really not, when a layer sits in between)."""

import numpy as np
import pytest

from visualcnn.engine import Sequential, layers as L, parallel
from visualcnn.engine.layers import relu_handoff


@pytest.fixture(autouse=True)
def keep_this_threads_denormal_mode():
    """Training flushes denormals in the calling thread (engine.parallel); new threads
    inherit it, which test_threading checks from a clean main thread."""
    before = parallel.denormals_flushed()
    yield
    parallel.flush_denormals(before)


def _model(between=None, input_shape=(12, 12, 3)):
    layers = [L.Input(input_shape), L.Conv2D(8, 3, activation="relu", padding="same")]
    if between is not None:
        layers.append(between)
    layers += [L.MaxPooling2D(2), L.Flatten(), L.Dense(5, activation="softmax")]
    m = Sequential(layers)
    m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    m.build()
    return m


def _gradients(model, x, y, enabled, monkeypatch):
    monkeypatch.setattr(relu_handoff, "ENABLED", enabled)
    skipped = []
    conv = model.layers[0]
    original = type(conv)._activation_backward

    def spy(self, dy, ctx, skip):
        skipped.append(relu_handoff.relu_already_applied(dy))
        return original(self, dy, ctx, skip)

    monkeypatch.setattr(type(conv), "_activation_backward", spy)
    loss, grads = model.compute_gradients(x, y)
    monkeypatch.undo()
    return loss, [g.copy() for g in grads], skipped


@pytest.mark.parametrize("input_shape", [(12, 12, 3), (11, 13, 1), (10, 10, 16)])
def test_handoff_gives_the_same_gradients_and_skips_the_relu_pass(monkeypatch, input_shape):
    rng = np.random.default_rng(0)
    model = _model(input_shape=input_shape)
    x = rng.standard_normal((6, *input_shape)).astype(np.float32)
    y = rng.integers(0, 5, 6)
    loss_on, grads_on, skipped_on = _gradients(model, x, y, True, monkeypatch)
    loss_off, grads_off, skipped_off = _gradients(model, x, y, False, monkeypatch)
    assert skipped_on == [True] and skipped_off == [False]
    assert loss_on == loss_off
    for a, b in zip(grads_on, grads_off):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert any(np.abs(g).max() > 0 for g in grads_on)


def test_no_handoff_through_another_layer(monkeypatch):
    rng = np.random.default_rng(1)
    model = _model(between=L.Activation("tanh"))
    x = rng.standard_normal((4, 12, 12, 3)).astype(np.float32)
    _, _, skipped = _gradients(model, x, rng.integers(0, 5, 4), True, monkeypatch)
    assert skipped == [False]


def test_handoff_through_a_pass_through_layer_is_still_exact(monkeypatch):
    """A linear Activation returns its input array itself, so the identity survives; the
    maths does too (relu' routed by the pool is the same)."""
    rng = np.random.default_rng(2)
    model = _model(between=L.Activation("linear"))
    x = rng.standard_normal((4, 12, 12, 3)).astype(np.float32)
    y = rng.integers(0, 5, 4)
    _, grads_on, skipped = _gradients(model, x, y, True, monkeypatch)
    _, grads_off, _ = _gradients(model, x, y, False, monkeypatch)
    assert skipped == [True]
    for a, b in zip(grads_on, grads_off):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
