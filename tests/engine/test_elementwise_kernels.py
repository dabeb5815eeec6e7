"""Dropout masks and global pooling kernels against numpy references."""

import numba
import numpy as np
import pytest

from visualcnn.engine import Sequential, layers as L
from visualcnn.engine.kernels import elementwise as k
from visualcnn.engine.layers.base import Context


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5, 0.9])
def test_dropout_forward_backward_match_the_numpy_mask(rate):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(50_001).astype(np.float32)
    key = np.uint64(123456789)
    keep = k.keep_mask_reference(key, x.size, rate)
    scale = np.float32(1.0 / (1.0 - rate))
    y = np.full_like(x, np.nan)
    k.dropout_forward(x, y, key, k.dropout_threshold(rate), scale)
    np.testing.assert_array_equal(y, np.where(keep, x * scale, np.float32(0.0)))
    assert abs(keep.mean() - (1 - rate)) < 0.01
    dy = rng.standard_normal(x.size).astype(np.float32)
    dx = np.full_like(dy, np.nan)
    k.dropout_backward(dy, dx, key, k.dropout_threshold(rate), scale)
    np.testing.assert_array_equal(dx, np.where(keep, dy * scale, np.float32(0.0)))


def test_dropout_masks_differ_between_keys_and_positions():
    a = k.keep_mask_reference(np.uint64(1), 10_000, 0.5)
    b = k.keep_mask_reference(np.uint64(2), 10_000, 0.5)
    assert 0.4 < (a != b).mean() < 0.6          # independent-looking masks for two keys
    assert 0.4 < (a[1:] != a[:-1]).mean() < 0.6  # and no runs along the positions


def test_dropout_mask_same_for_any_thread_count():
    x = np.ones(100_000, np.float32)
    outs = []
    for threads in (1, numba.config.NUMBA_NUM_THREADS):
        numba.set_num_threads(threads)
        try:
            y = np.empty_like(x)
            k.dropout_forward(x, y, np.uint64(99), k.dropout_threshold(0.3), np.float32(1 / 0.7))
            outs.append(y)
        finally:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    np.testing.assert_array_equal(outs[0], outs[1])


def test_dropout_layer_is_reproducible_after_reseed_and_backward_uses_the_same_mask():
    m = Sequential([L.Input(shape=(300,)), L.Dropout(0.4)])
    m.build(seed=0)
    layer = m.layers[0]
    x = np.random.default_rng(1).standard_normal((8, 300)).astype(np.float32) + 5.0
    layer.reseed(7)
    ctx = Context()
    y1 = layer.forward(x, ctx, training=True).copy()
    dx = layer.backward(np.ones_like(x), ctx)
    np.testing.assert_array_equal(dx != 0, y1 != 0)
    y2 = layer.forward(x, Context(), training=True).copy()
    assert not np.array_equal(y1, y2)  # a new key every call
    layer.reseed(7)
    np.testing.assert_array_equal(layer.forward(x, Context(), training=True), y1)


SHAPES = [(3, 4, 5, 6), (1, 1, 1, 2), (17, 7, 7, 64)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("serial", [False, True])
def test_global_average_pooling(shape, serial):
    n, h, w, c = shape
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape).astype(np.float32)
    y = np.full((n, c), np.nan, np.float32)
    (k.global_avg_forward_serial if serial else k.global_avg_forward)(x.reshape(n, h * w, c), y)
    np.testing.assert_allclose(y, x.astype(np.float64).mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
    dy = rng.standard_normal((n, c)).astype(np.float32)
    dx = np.full(shape, np.nan, np.float32)
    (k.global_avg_backward_serial if serial else k.global_avg_backward)(dy, dx.reshape(n, h * w, c))
    np.testing.assert_allclose(dx, np.broadcast_to(dy[:, None, None, :] / (h * w), shape), rtol=1e-6)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("serial", [False, True])
def test_global_max_pooling_first_maximum_takes_the_gradient(shape, serial):
    n, h, w, c = shape
    rng = np.random.default_rng(3)
    x = rng.integers(-3, 3, shape).astype(np.float32)  # ties: the first maximum wins
    flat = x.reshape(n, h * w, c)
    y = np.full((n, c), np.nan, np.float32)
    where = np.full((n, c), -1, np.int32)
    (k.global_max_forward_serial if serial else k.global_max_forward)(flat, y, where)
    np.testing.assert_array_equal(y, flat.max(axis=1))
    np.testing.assert_array_equal(where, flat.argmax(axis=1))
    dy = rng.standard_normal((n, c)).astype(np.float32)
    dx = np.full(shape, np.nan, np.float32)
    (k.global_max_backward_serial if serial else k.global_max_backward)(dy, where, dx.reshape(n, h * w, c))
    ref = np.zeros((n, h * w, c), np.float32)
    np.put_along_axis(ref, flat.argmax(axis=1)[:, None, :], dy[:, None, :], axis=1)
    np.testing.assert_array_equal(dx.reshape(n, h * w, c), ref)


def test_global_max_pooling_propagates_nan():
    x = np.array([[[1.0], [np.nan], [5.0]]], np.float32)
    y = np.empty((1, 1), np.float32)
    where = np.empty((1, 1), np.int32)
    k.global_max_forward(x, y, where)
    assert np.isnan(y[0, 0]) and where[0, 0] == 1
