"""Conv2D(relu) -> MaxPooling2D: the pool applies relu's derivative and the conv skips its
own pass (layers/relu_handoff.py). Gradients must equal the ordinary passes exactly, and
the hand-off must really happen (or really not, when a layer sits in between)."""

import numpy as np
import pytest

from visualcnn.engine import Sequential, layers as L, model as model_module, parallel
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


def _gradients(model, x, y, enabled, monkeypatch, pooled=False, masked=False):
    """pooled: let a first conv take its weight gradient from the pool's gradient
    (``Conv2D.backward_from_pool``); off, the pool and the conv run their own backward.
    masked: let a first conv apply its relu's derivative inside its weight gradient
    (``Conv2D.masks_relu_in_gradient``); off, it runs its relu backward pass, which the
    hand-off tests watch."""
    monkeypatch.setattr(relu_handoff, "ENABLED", enabled)
    if not pooled:
        monkeypatch.setattr(model_module, "_first_conv_pool", lambda layers: None)
    skipped = []
    conv = model.layers[0]
    if not masked:
        monkeypatch.setattr(type(conv), "masks_relu_in_gradient", lambda self, *a: False)
    original = type(conv)._activation_backward

    def spy(self, dy, ctx, skip):
        if self is conv:
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


@pytest.mark.parametrize("input_shape,pooled", [((12, 12, 3), True), ((11, 13, 1), True), ((10, 10, 16), False)])
@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("pool", [{}, {"pool_size": 3, "strides": 2}, {"padding": "same"}],
                         ids=["2x2", "3x3-stride-2-overlapping", "2x2-same"])
def test_first_conv_takes_its_gradient_from_the_pool_bit_for_bit(monkeypatch, input_shape, pooled, use_bias, pool):
    """A first conv on few channels (C <= 4) with a fused relu, right before a max pool:
    one pass rebuilds each image's gradient in cache (few_channel.backward_kernel_pooled)
    instead of the pool's backward and the conv's, for any window (overlapping, padded);
    the same sums in the same order. With
    16 channels (another strategy) the ordinary passes run."""
    rng = np.random.default_rng(3)
    layers = [L.Input(input_shape), L.Conv2D(8, 3, activation="relu", padding="same", use_bias=use_bias),
              L.MaxPooling2D(**{"pool_size": 2, **pool}), L.Flatten(), L.Dense(5, activation="softmax")]
    model = Sequential(layers)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.build()
    x = rng.standard_normal((7, *input_shape)).astype(np.float32)
    y = rng.integers(0, 5, 7)
    calls, forward_calls = [], []
    original = L.Conv2D.backward_from_pool
    original_forward = L.Conv2D.forward_into_pool
    monkeypatch.setattr(L.Conv2D, "backward_from_pool", lambda self, *a: (calls.append(1), original(self, *a)))
    monkeypatch.setattr(L.Conv2D, "forward_into_pool",
                        lambda self, *a: (forward_calls.append(1), original_forward(self, *a))[1])
    loss_fused, grads_fused, _ = _gradients(model, x, y, True, monkeypatch, pooled=True)
    assert len(calls) == (1 if pooled else 0)
    # the forward too, where every 2x2 window lies inside the conv output
    whole_windows = pool == {} or (pool == {"padding": "same"} and input_shape[0] % 2 == input_shape[1] % 2 == 0)
    assert len(forward_calls) == (1 if pooled and whole_windows else 0)
    loss_plain, grads_plain, _ = _gradients(model, x, y, True, monkeypatch)
    assert loss_fused == loss_plain
    for a, b in zip(grads_fused, grads_plain):
        assert np.array_equal(a, b)
    assert all(np.abs(g).max() > 0 for g in grads_fused)


def test_no_pooled_gradient_below_the_first_conv_or_without_relu(monkeypatch):
    """The pooled path only replaces a backward whose input gradient nobody needs (not a
    second conv's) and whose relu the pool can apply (not a tanh conv's)."""
    calls = []
    original = L.Conv2D.backward_from_pool
    monkeypatch.setattr(L.Conv2D, "backward_from_pool", lambda self, *a: (calls.append(1), original(self, *a)))
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 12, 12, 1)).astype(np.float32)
    y = rng.integers(0, 5, 3)
    second = Sequential([L.Input((12, 12, 1)), L.Conv2D(4, 3, activation="relu", padding="same"),
                         L.Conv2D(4, 3, activation="relu", padding="same"), L.MaxPooling2D(2), L.Flatten(),
                         L.Dense(5, activation="softmax")])
    tanh = Sequential([L.Input((12, 12, 1)), L.Conv2D(4, 3, activation="tanh", padding="same"), L.MaxPooling2D(2),
                       L.Flatten(), L.Dense(5, activation="softmax")])
    for m in (second, tanh):
        m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        m.build()
        m.compute_gradients(x, y)
    assert calls == []


@pytest.mark.parametrize("input_shape,strides", [((12, 12, 3), 1), ((11, 13, 1), 1), ((13, 12, 2), (2, 1))])
@pytest.mark.parametrize("use_bias", [True, False])
def test_first_conv_masks_its_relu_in_the_weight_gradient_bit_for_bit(monkeypatch, input_shape, strides, use_bias):
    """A few-channel first conv not followed by a max pool: its weight gradient applies
    relu's derivative as it reads dy, with no relu pass; the same gradients, bit for bit."""
    rng = np.random.default_rng(4)
    m = Sequential([L.Input(input_shape), L.Conv2D(8, 3, strides=strides, activation="relu", use_bias=use_bias),
                    L.Conv2D(4, 3, activation="relu"), L.Flatten(), L.Dense(5, activation="softmax")])
    m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    m.build()
    x = rng.standard_normal((5, *input_shape)).astype(np.float32)
    y = rng.integers(0, 5, 5)
    assert m.layers[0].masks_relu_in_gradient()
    loss_masked, grads_masked, relu_passes = _gradients(m, x, y, True, monkeypatch, masked=True)
    loss_plain, grads_plain, plain_passes = _gradients(m, x, y, True, monkeypatch)
    assert relu_passes == [] and plain_passes == [False]  # masked: the conv ran no relu backward
    assert loss_masked == loss_plain
    for a, b in zip(grads_masked, grads_plain):
        np.testing.assert_array_equal(a, b)
    assert np.abs(grads_masked[0]).max() > 0


def test_no_relu_mask_without_relu_or_a_few_channel_weight_gradient():
    def first_conv(input_shape, **config):
        m = Sequential([L.Input(input_shape), L.Conv2D(4, 3, **config), L.Flatten(), L.Dense(2)])
        m.build()
        return m.layers[0]

    assert first_conv((10, 10, 3), activation="relu").masks_relu_in_gradient()
    assert not first_conv((10, 10, 3), activation="tanh").masks_relu_in_gradient()
    assert not first_conv((10, 10, 8), activation="relu").masks_relu_in_gradient()  # im2col weight gradient
    assert not first_conv((10, 10, 3), activation="relu", strides=(1, 2)).masks_relu_in_gradient()  # column stride
