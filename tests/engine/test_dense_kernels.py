"""Dense kernels (sgemm split across workers) against numpy, and the Dense layer on top."""

import numpy as np
import pytest

from visualcnn.engine import Sequential, layers as L
from visualcnn.engine.kernels import blas, dense

from test_gradients import _fd_check

# (5, 784, 1024): too few rows to split them, split by columns; (37, 300, 301): odd
# blocks; both above the size where the work is split across the workers.
SHAPES = [(1, 784, 512), (2, 5, 3), (64, 784, 512), (1000, 64, 10), (7, 3, 300), (33, 17, 1),
          (5, 784, 1024), (37, 300, 301)]


def _arrays(n, k, u, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, k)).astype(np.float32), rng.standard_normal((k, u)).astype(np.float32),
            rng.standard_normal(u).astype(np.float32), rng.standard_normal((n, u)).astype(np.float32))


@pytest.mark.parametrize("n,k,u", SHAPES)
@pytest.mark.parametrize("serial", [False, True])
@pytest.mark.parametrize("relu,use_bias", [(False, True), (True, True), (True, False)])
def test_forward_matches_numpy(n, k, u, serial, relu, use_bias):
    x, w, b, _ = _arrays(n, k, u)
    z = np.full((n, u), np.nan, np.float32)
    dense.dense_forward(x, w, b if use_bias else None, z, relu=relu, serial=serial)
    ref = x.astype(np.float64) @ w + (b if use_bias else 0)
    if relu:
        ref = np.maximum(ref, 0)
    np.testing.assert_allclose(z, ref, rtol=1e-4, atol=1e-4 * np.sqrt(k))


@pytest.mark.parametrize("n,k,u", SHAPES)
@pytest.mark.parametrize("serial", [False, True])
@pytest.mark.parametrize("need_dx,use_bias", [(True, True), (False, True), (True, False)])
def test_backward_matches_numpy(n, k, u, serial, need_dx, use_bias):
    x, w, _, dz = _arrays(n, k, u, seed=1)
    gk = np.full((k, u), np.nan, np.float32)
    gb = np.full(u, np.nan, np.float32) if use_bias else None
    dx = np.full((n, k), np.nan, np.float32) if need_dx else None
    dense.dense_backward(x, dz, w, gk, gb, dx, serial=serial)
    tol = 1e-4 * np.sqrt(max(n, u))
    np.testing.assert_allclose(gk, x.T.astype(np.float64) @ dz, rtol=1e-4, atol=tol)
    if use_bias:
        np.testing.assert_allclose(gb, dz.sum(0, dtype=np.float64), rtol=1e-4, atol=tol)
    if need_dx:
        np.testing.assert_allclose(dx, dz.astype(np.float64) @ w.T, rtol=1e-4, atol=tol)


def test_numpy_fallback_without_sgemm(monkeypatch):
    monkeypatch.setattr(blas, "SGEMM", None)
    x, w, b, dz = _arrays(9, 6, 4)
    z = np.empty((9, 4), np.float32)
    dense.dense_forward(x, w, b, z, relu=True)
    np.testing.assert_allclose(z, np.maximum(x @ w + b, 0), rtol=1e-5, atol=1e-5)
    gk, gb, dx = np.empty_like(w), np.empty_like(b), np.empty_like(x)
    dense.dense_backward(x, dz, w, gk, gb, dx)
    np.testing.assert_allclose(gk, x.T @ dz, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gb, dz.sum(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx, dz @ w.T, rtol=1e-5, atol=1e-5)


def test_dense_then_relu_layer_is_fused_and_exact():
    model = Sequential([L.Input(shape=(7, 6, 2)), L.Flatten(), L.Dense(8), L.Activation("relu"),
                        L.Dense(4, activation="softmax")])
    model.build(seed=3)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 7, 6, 2)).astype(np.float32)
    acts = model.activations(x)
    assert (acts["dense"] < 0).any()  # the Dense output itself, not the relu'd one
    np.testing.assert_allclose(model.predict(x), acts["dense_1"], rtol=1e-6)
    _fd_check(model, x, rng.integers(0, 4, 5), eps=3e-3)


def test_mlp_training_gradients_match_the_numpy_path(monkeypatch):
    """Big enough for the parallel split; the reference is the np.matmul fallback."""
    def gradients():
        model = Sequential([L.Input(shape=(28, 28, 1)), L.Flatten(), L.Dense(64, activation="relu"),
                            L.Dense(32), L.Activation("relu"), L.Dense(10, activation="softmax")])
        model.build(seed=5)
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        rng = np.random.default_rng(1)
        return model.compute_gradients(rng.random((64, 28, 28, 1), np.float32), rng.integers(0, 10, 64))

    loss, grads = gradients()
    monkeypatch.setattr(blas, "SGEMM", None)
    ref_loss, ref_grads = gradients()
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    for g, ref in zip(grads, ref_grads):
        np.testing.assert_allclose(g, ref, rtol=1e-4, atol=1e-5)


def test_few_rows_skip_zero_inputs_exactly():
    """The few-row path skips kernel rows of zero inputs: same values as the full product."""
    x, w, b, _ = _arrays(3, 784, 256, seed=4)  # >= 128 units: the few-row kernel
    x[x < 0.8] = 0.0  # mostly background, like a drawn digit
    z = np.full((3, 256), np.nan, np.float32)
    dense.dense_forward(x, w, b, z, relu=False)
    np.testing.assert_allclose(z, x.astype(np.float64) @ w + b, rtol=1e-4, atol=1e-4)
    x[:] = 0.0
    dense.dense_forward(x, w, b, z, relu=True)
    np.testing.assert_array_equal(z, np.broadcast_to(np.maximum(b, 0), z.shape))


def test_backward_stops_at_the_first_trainable_layer_with_the_same_gradients():
    model = Sequential([L.Input(shape=(6, 6, 1)), L.Flatten(), L.Dense(8, trainable=False), L.Dense(8, activation="relu"),
                        L.Dense(3, activation="softmax")])
    model.build(seed=1)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(2)
    x, y = rng.random((4, 6, 6, 1), np.float32), rng.integers(0, 3, 4)
    _, grads = model.compute_gradients(x, y)
    ctxs = model._train_ctxs
    for ctx in ctxs:
        ctx.saved.clear()
    out = model._forward(x, ctxs, training=True)
    _, grad, fused = model._loss_and_grad(out, y, ctxs)
    assert model._backward(grad, ctxs, fused, need_input_grad=True).shape == x.shape
    for g, ref in zip(grads, model._gradients(ctxs)):
        np.testing.assert_allclose(g, ref, rtol=1e-6, atol=1e-7)
    # Nothing below the first trainable layer runs: the frozen Dense's saved input is
    # gone, so running its backward would raise KeyError; and no dx is made.
    ctxs[1].saved.clear()
    assert model._backward(grad, ctxs, fused) is None
