"""BatchNormalization's numba kernels against a plain numpy reference (Keras's formulas),
and the relu the model folds into it."""

import numpy as np
import pytest

from visualcnn.engine import Sequential, layers as L
from visualcnn.engine.layers.base import Context

from test_gradients import _fd_check


def _reference_forward(x, gamma, beta, mean_m, var_m, training, momentum=0.99, eps=1e-3):
    """Keras BatchNormalization.call in float64: biased batch variance, moving update."""
    x64 = x.astype(np.float64)
    axes = tuple(range(x.ndim - 1))
    if training:
        mean, var = x64.mean(axes), x64.var(axes)
        new_mean = mean_m * momentum + mean * (1 - momentum)
        new_var = var_m * momentum + var * (1 - momentum)
    else:
        mean, var = mean_m.astype(np.float64), var_m.astype(np.float64)
        new_mean, new_var = mean_m, var_m
    y = (x64 - mean) / np.sqrt(var + eps) * gamma + beta
    return y, new_mean, new_var


def _reference_backward(x, dy, gamma, mean, var, training, eps=1e-3):
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    axes = tuple(range(x.ndim - 1))
    inv = 1.0 / np.sqrt(var + eps)
    xhat = (x64 - mean) * inv
    dgamma, dbeta = (dy64 * xhat).sum(axes), dy64.sum(axes)
    if training:
        dxhat = dy64 * gamma
        dx = inv * (dxhat - dxhat.mean(axes) - xhat * (dxhat * xhat).mean(axes))
    else:
        dx = dy64 * gamma * inv
    return dx, dgamma, dbeta


def _layer(shape, **config):
    m = Sequential([L.Input(shape=shape), L.BatchNormalization(**config)])
    m.build(seed=0)
    bn = m.layers[0]
    rng = np.random.default_rng(1)
    if bn.weight("gamma") is not None:
        bn.weight("gamma")[...] = rng.uniform(0.5, 1.5, bn.weight("gamma").shape)
    if bn.weight("beta") is not None:
        bn.weight("beta")[...] = rng.normal(0, 0.3, bn.weight("beta").shape)
    bn.weight("moving_mean")[...] = rng.normal(0, 1, bn.weight("moving_mean").shape)
    bn.weight("moving_variance")[...] = rng.uniform(0.5, 2, bn.weight("moving_variance").shape)
    return bn


@pytest.mark.parametrize("shape,n", [((5, 6, 7), 3), ((12,), 1000), ((28, 28, 32), 9), ((4, 4, 3), 1)])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("relu", [False, True])
def test_forward_backward_match_numpy(shape, n, training, relu):
    bn = _layer(shape)
    rng = np.random.default_rng(2)
    x = rng.normal(3.0, 2.0, (n, *shape)).astype(np.float32)  # an offset mean: cancellation check
    dy = rng.standard_normal(x.shape).astype(np.float32)
    gamma, beta, mm, mv = (w.copy().astype(np.float64) for w in bn.weights)
    ctx = Context()
    ctx.fuse_relu = relu
    y = bn.forward(x, ctx, training=training)
    ref, new_mean, new_var = _reference_forward(x, gamma, beta, mm, mv, training)
    if relu:
        ref = np.maximum(ref, 0)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(bn.weight("moving_mean"), new_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.weight("moving_variance"), new_var, rtol=1e-5, atol=1e-6)

    axes = tuple(range(x.ndim - 1))
    mean = x.astype(np.float64).mean(axes) if training else mm
    var = x.astype(np.float64).var(axes) if training else mv
    dy_eff = dy * (y > 0) if relu else dy
    dx_ref, dgamma_ref, dbeta_ref = _reference_backward(x, dy_eff, gamma, mean, var, training)
    dx = bn.backward(dy, ctx, need_dx=True)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(ctx.grads["gamma"], dgamma_ref, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(ctx.grads["beta"], dbeta_ref, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("config", [{"center": False}, {"scale": False}, {"center": False, "scale": False}])
def test_without_gamma_or_beta(config):
    bn = _layer((4, 4, 5), **config)
    x = np.random.default_rng(3).normal(1.0, 2.0, (6, 4, 4, 5)).astype(np.float32)
    gamma = bn.weight("gamma") if bn.weight("gamma") is not None else np.ones(5, np.float32)
    beta = bn.weight("beta") if bn.weight("beta") is not None else np.zeros(5, np.float32)
    ref, _, _ = _reference_forward(x, gamma.astype(np.float64), beta.astype(np.float64),
                                   bn.weight("moving_mean").astype(np.float64),
                                   bn.weight("moving_variance").astype(np.float64), True)
    ctx = Context()
    np.testing.assert_allclose(bn.forward(x, ctx, training=True), ref, rtol=1e-4, atol=1e-4)
    dy = np.random.default_rng(4).standard_normal(x.shape).astype(np.float32)
    dx_ref, dgamma, dbeta = _reference_backward(x, dy, gamma, x.mean((0, 1, 2)), x.astype(np.float64).var((0, 1, 2)),
                                                True)
    np.testing.assert_allclose(bn.backward(dy, ctx), dx_ref, rtol=1e-3, atol=1e-4)
    assert ("gamma" in ctx.grads) == config.get("scale", True)
    assert ("beta" in ctx.grads) == config.get("center", True)


def test_moving_statistics_frozen_when_update_stats_is_off():
    bn = _layer((6,))
    before = [w.copy() for w in bn.weights]
    ctx = Context()
    ctx.update_stats = False
    bn.forward(np.random.default_rng(5).standard_normal((8, 6)).astype(np.float32), ctx, training=True)
    for a, b in zip(before, bn.weights):
        np.testing.assert_array_equal(a, b)


def test_same_result_with_one_and_two_threads():
    import numba

    bn = _layer((14, 14, 8))
    x = np.random.default_rng(6).standard_normal((40, 14, 14, 8)).astype(np.float32)
    outs = []
    for threads in (1, numba.config.NUMBA_NUM_THREADS):
        for w, v in zip(bn.weights[2:], (0.0, 1.0)):
            w[...] = v
        numba.set_num_threads(threads)
        try:
            ctx = Context()
            outs.append((bn.forward(x, ctx, training=True).copy(), bn.weight("moving_variance").copy()))
        finally:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    np.testing.assert_array_equal(outs[0][0], outs[1][0])
    np.testing.assert_array_equal(outs[0][1], outs[1][1])


def _bn_relu_model():
    return Sequential([L.Input(shape=(7, 6, 2)), L.Conv2D(3, 3), L.BatchNormalization(), L.Activation("relu"),
                       L.Flatten(), L.Dense(6), L.BatchNormalization(), L.Activation("relu"),
                       L.Dense(4, activation="softmax")])


def test_fused_relu_gradients_match_finite_differences():
    model = _bn_relu_model()
    model.build(seed=3)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 7, 6, 2)).astype(np.float32)
    # a smaller step than the default so no relu input crosses zero
    _fd_check(model, x, rng.integers(0, 4, 5), eps=3e-3)


def test_fused_relu_gives_the_unfused_outputs_and_activations_show_pre_relu_maps():
    model = _bn_relu_model()
    model.build(seed=3)
    x = np.random.default_rng(7).standard_normal((3, 7, 6, 2)).astype(np.float32)
    acts = model.activations(x)
    bn_out = acts["batch_normalization"]
    assert (bn_out < 0).any()  # the BN map itself, before the relu layer
    np.testing.assert_allclose(acts["activation"], np.maximum(bn_out, 0))
    np.testing.assert_allclose(model.predict(x), acts["dense_1"], rtol=1e-6)


def test_non_last_axis_uses_the_general_path():
    bn = _layer((3, 4, 5), axis=1)
    x = np.random.default_rng(8).normal(2.0, 1.0, (6, 3, 4, 5)).astype(np.float32)
    ctx = Context()
    y = bn.forward(x, ctx, training=True)
    x64 = x.astype(np.float64)
    mean, var = x64.mean((0, 2, 3), keepdims=True), x64.var((0, 2, 3), keepdims=True)
    g = bn.weight("gamma").reshape(1, 3, 1, 1)
    b = bn.weight("beta").reshape(1, 3, 1, 1)
    np.testing.assert_allclose(y, (x64 - mean) / np.sqrt(var + 1e-3) * g + b, rtol=1e-4, atol=1e-4)


def test_non_last_axis_with_folded_relu_backward():
    bn = _layer((3, 4, 5), axis=1)
    rng = np.random.default_rng(9)
    x = rng.normal(0.5, 1.0, (6, 3, 4, 5)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    ctx = Context()
    ctx.fuse_relu = True
    y = bn.forward(x, ctx, training=True)
    x64 = x.astype(np.float64)
    mean, var = x64.mean((0, 2, 3), keepdims=True), x64.var((0, 2, 3), keepdims=True)
    g = bn.weight("gamma").reshape(1, 3, 1, 1).astype(np.float64)
    ref = (x64 - mean) / np.sqrt(var + 1e-3) * g + bn.weight("beta").reshape(1, 3, 1, 1)
    np.testing.assert_allclose(y, np.maximum(ref, 0), rtol=1e-4, atol=1e-4)
    dy_eff = dy * (ref > 0)
    inv = 1 / np.sqrt(var + 1e-3)
    xhat = (x64 - mean) * inv
    dxhat = dy_eff * g
    dx_ref = inv * (dxhat - dxhat.mean((0, 2, 3), keepdims=True) - xhat * (dxhat * xhat).mean((0, 2, 3), keepdims=True))
    np.testing.assert_allclose(bn.backward(dy, ctx), dx_ref, rtol=1e-3, atol=1e-4)


def test_serial_backward_for_a_second_thread_gives_the_parallel_result():
    """input_gradients() from the GUI thread runs the serial twins (parallel.use_serial())."""
    from visualcnn.engine import parallel

    bn = _layer((16, 16, 32))
    rng = np.random.default_rng(10)
    x = rng.standard_normal((40, 16, 16, 32)).astype(np.float32)  # 328k values: parallel unless told
    dy = rng.standard_normal(x.shape).astype(np.float32)
    results = []
    for serial in (False, True):
        ctx = Context()
        ctx.fuse_relu = True
        if serial:
            with parallel.serial_inference():
                bn.forward(x, ctx, training=False)
                dx = bn.backward(dy, ctx)
        else:
            bn.forward(x, ctx, training=False)
            dx = bn.backward(dy, ctx)
        results.append((dx.copy(), ctx.grads["gamma"].copy(), ctx.grads["beta"].copy()))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("use_bias", [False, True])
@pytest.mark.parametrize("after", ["relu", "none", "tanh"])
@pytest.mark.parametrize("bn_config", [{}, {"center": False, "scale": False}])
@pytest.mark.parametrize("channels", [2, 16])  # few-channel and Winograd / im2col convs
def test_predict_folds_batchnorm_into_the_conv_before_it(monkeypatch, use_bias, after, bn_config, channels):
    tail = [L.Activation(after)] if after != "none" else []
    model = Sequential([L.Input(shape=(9, 8, channels)), L.Conv2D(5, 3, padding="same", use_bias=use_bias),
                        L.BatchNormalization(**bn_config), *tail, L.Flatten(), L.Dense(4)])
    model.build(seed=4)
    rng = np.random.default_rng(5)
    for w in model.layers[0].weights + model.layers[1].weights:
        w[...] = rng.uniform(0.5, 1.5, w.shape) * rng.choice([-1.0, 1.0], w.shape)
    model.layers[1].weight("moving_variance")[...] = rng.uniform(0.2, 3.0, 5)
    calls = []
    fold = L.BatchNormalization.fold_into
    monkeypatch.setattr(L.BatchNormalization, "fold_into", lambda *a: (calls.append(1), fold(*a))[1])
    x = rng.standard_normal((3, 9, 8, channels)).astype(np.float32)
    expect = model.activations(x)  # every layer's output: no folding
    assert not calls
    assert (expect[model.layers[1].name] < 0).any()
    last = expect[model.layers[-1].name]
    np.testing.assert_allclose(model.predict(x), last, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(model.predict(x[:1], batch_size=1), last[:1], rtol=1e-4, atol=1e-4)
    assert calls


def test_no_fold_after_a_conv_with_its_own_activation(monkeypatch):
    model = Sequential([L.Input(shape=(6, 6, 2)), L.Conv2D(3, 3, activation="relu"), L.BatchNormalization(),
                        L.Flatten(), L.Dense(2)])
    model.build(seed=1)
    model.layers[1].weight("moving_mean")[...] = 0.5
    monkeypatch.setattr(L.BatchNormalization, "fold_into", lambda *a: pytest.fail("folded across a relu"))
    x = np.random.default_rng(2).standard_normal((2, 6, 6, 2)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x), model.activations(x)["dense"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("use_bias", [False, True])
@pytest.mark.parametrize("bn_config", [{}, {"center": False}, {"scale": False}, {"center": False, "scale": False}])
def test_the_folded_kernel_and_bias_are_the_numpy_formula_bit_for_bit(use_bias, bn_config):
    """The fold is one compiled call (a single image paid 7.8 us per folded layer for the
    numpy passes); its arithmetic stays the numpy reference's, in float32."""
    from visualcnn.engine.kernels import normalization as k

    model = Sequential([L.Input(shape=(7, 7, 6)), L.Conv2D(24, 3, use_bias=use_bias),
                        L.BatchNormalization(epsilon=1e-3, **bn_config)])
    model.build(seed=2)
    conv, bn = model.layers
    rng = np.random.default_rng(8)
    for w in conv.weights + bn.weights:
        w[...] = rng.uniform(0.1, 2.0, w.shape) * rng.choice([-1.0, 1.0], w.shape)
    bn.weight("moving_variance")[...] = rng.uniform(0.01, 3.0, 24)
    folded, folded_bias = bn.fold_into(conv.weights[0], conv._bias(), Context())

    stats = [np.empty(24, np.float32) for _ in range(4)]  # mean, inv_std, scale, shift
    gamma, beta = bn._flat_params()
    k.bn_finish_moving(gamma, beta, np.float32(1e-3), bn.weight("moving_mean"), bn.weight("moving_variance"), *stats)
    expect_kernel = conv.weights[0] * stats[2]
    expect_bias = stats[3].copy() if conv._bias() is None else conv._bias() * stats[2] + stats[3]
    assert folded.dtype == np.float32 and folded_bias.dtype == np.float32
    np.testing.assert_array_equal(folded, expect_kernel)
    np.testing.assert_array_equal(folded_bias, expect_bias)
