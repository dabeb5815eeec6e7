"""Optimizer steps against values computed by hand from Keras's update rules."""

import math

import numpy as np
import pytest

from visualcnn.engine import optimizers


def _run(opt, grads, p0=1.0):
    p = np.array([p0], np.float32)
    for g in grads:
        opt.step([p], [np.array([g], np.float32)])
    return float(p[0])


def test_defaults_match_keras():
    assert optimizers.SGD().get_config() == {"name": "sgd", "learning_rate": 0.01, "momentum": 0.0, "nesterov": False}
    assert optimizers.Adam().get_config() == {"name": "adam", "learning_rate": 0.001, "beta_1": 0.9,
                                              "beta_2": 0.999, "epsilon": 1e-7}
    assert optimizers.RMSprop().get_config() == {"name": "rmsprop", "learning_rate": 0.001, "rho": 0.9,
                                                 "momentum": 0.0, "epsilon": 1e-7}


def test_sgd_plain():
    assert _run(optimizers.SGD(0.1), [0.5, -1.0]) == pytest.approx(1.0 - 0.05 + 0.1)


def test_sgd_momentum_and_nesterov():
    # m1 = -0.1*0.5 = -0.05, p = 0.95; m2 = 0.9*-0.05 - 0.1*1.0 = -0.145, p = 0.805
    assert _run(optimizers.SGD(0.1, momentum=0.9), [0.5, 1.0]) == pytest.approx(0.805, abs=1e-6)
    # nesterov: p += 0.9*m - lr*g: step1 = 0.9*-0.05 - 0.05 = -0.095; step2 = 0.9*-0.145 - 0.1 = -0.2305
    assert _run(optimizers.SGD(0.1, momentum=0.9, nesterov=True), [0.5, 1.0]) == pytest.approx(
        1.0 - 0.095 - 0.2305, abs=1e-6)


def test_adam_two_steps():
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-7
    p, m, v = 1.0, 0.0, 0.0
    for t, g in enumerate([0.5, -0.2], start=1):
        m += (g - m) * (1 - b1)
        v += (g * g - v) * (1 - b2)
        alpha = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        p -= alpha * m / (math.sqrt(v) + eps)
    assert _run(optimizers.Adam(lr), [0.5, -0.2]) == pytest.approx(p, abs=1e-6)
    # first Adam step moves by ~lr whatever the gradient's scale
    assert _run(optimizers.Adam(0.01), [1000.0]) == pytest.approx(0.99, abs=1e-5)


def test_rmsprop_with_and_without_momentum():
    lr, rho, eps = 0.01, 0.9, 1e-7
    p, v, mom = 1.0, 0.0, 0.0
    for g in [0.5, -0.2]:
        v = rho * v + (1 - rho) * g * g
        p -= lr * g / math.sqrt(v + eps)
    assert _run(optimizers.RMSprop(lr), [0.5, -0.2]) == pytest.approx(p, abs=1e-6)
    p, v = 1.0, 0.0
    for g in [0.5, -0.2]:
        v = rho * v + (1 - rho) * g * g
        mom = 0.5 * mom + lr * g / math.sqrt(v + eps)
        p -= mom
    assert _run(optimizers.RMSprop(lr, momentum=0.5), [0.5, -0.2]) == pytest.approx(p, abs=1e-6)


def test_get_and_errors():
    assert isinstance(optimizers.get("Adam"), optimizers.Adam)
    opt = optimizers.SGD()
    assert optimizers.get(opt) is opt
    with pytest.raises(ValueError, match="unknown optimizer 'adagrad'"):
        optimizers.get("adagrad")
    with pytest.raises(ValueError, match="learning_rate must be a positive number"):
        optimizers.Adam(learning_rate=-1)
    with pytest.raises(ValueError, match="gradient 0 has shape"):
        optimizers.SGD().step([np.zeros(3, np.float32)], [np.zeros(2, np.float32)])


# --- the kernels on large parameters (parallel blocks) against numpy float32 references ---

def _big(seed, n=100_003):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(n).astype(np.float32), (rng.standard_normal(n) * 0.1).astype(np.float32)


def _numpy_steps(kind, p, grads, **kw):
    """The Keras update rules in numpy float32, step by step."""
    p = p.copy()
    f = np.float32
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        if kind == "sgd":
            p -= f(kw["lr"]) * g
        elif kind == "momentum":
            m = f(kw["momentum"]) * m - f(kw["lr"]) * g
            p += (f(kw["momentum"]) * m - f(kw["lr"]) * g) if kw["nesterov"] else m
        elif kind == "adam":
            alpha = f(kw["lr"] * math.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t))
            m += (g - m) * (f(1) - f(0.9))
            v += (g * g - v) * (f(1) - f(0.999))
            p -= m * alpha / (np.sqrt(v) + f(1e-7))
        elif kind == "rmsprop":
            v = f(0.9) * v + (f(1) - f(0.9)) * g * g
            inc = f(kw["lr"]) * g / np.sqrt(v + f(1e-7))
            if kw["momentum"]:
                m = f(kw["momentum"]) * m + inc
                p -= m
            else:
                p -= inc
    return p


@pytest.mark.parametrize("kind,opt,kw", [
    ("sgd", lambda: optimizers.SGD(0.1), {"lr": 0.1}),
    ("momentum", lambda: optimizers.SGD(0.1, momentum=0.9), {"lr": 0.1, "momentum": 0.9, "nesterov": False}),
    ("momentum", lambda: optimizers.SGD(0.1, momentum=0.9, nesterov=True), {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    ("adam", lambda: optimizers.Adam(0.01), {"lr": 0.01}),
    ("rmsprop", lambda: optimizers.RMSprop(0.01), {"lr": 0.01, "momentum": 0.0}),
    ("rmsprop", lambda: optimizers.RMSprop(0.01, momentum=0.5), {"lr": 0.01, "momentum": 0.5}),
])
def test_large_parameter_updates_match_numpy(kind, opt, kw):
    p0, _ = _big(0)
    grads = [_big(s)[1] for s in (1, 2, 3)]
    small = p0[:10].copy()  # the serial twin, in the same step
    p = p0.copy()
    o = opt()
    for g in grads:
        o.step([p, small], [g, g[:10].copy()])
    ref = _numpy_steps(kind, p0, grads, **kw)
    np.testing.assert_allclose(p, ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(small, ref[:10], rtol=1e-6, atol=1e-6)


def test_parallel_and_serial_kernels_agree_bit_for_bit():
    from visualcnn.engine.kernels import optimizer as k

    p, g = _big(4)
    out = []
    for fn, flags in ((k.adam_update, k.blocks(p.size)), (k.adam_update_serial, 1)):
        pp, m, v, b = p.copy(), np.zeros_like(p), np.zeros_like(p), np.empty_like(p)
        bad = np.ones(flags, np.int32)
        fn(pp, g, m, v, b, bad, np.float32(0.001), np.float32(0.9), np.float32(0.999), np.float32(1e-7))
        out.append(pp)
        assert np.array_equal(b, p)  # the backup holds the values from before the step
        assert not bad.any()
    np.testing.assert_array_equal(out[0], out[1])
    assert not np.array_equal(out[0], p)


def _every_optimizer():
    return [optimizers.SGD(0.1), optimizers.SGD(0.1, momentum=0.9), optimizers.SGD(0.1, momentum=0.9, nesterov=True),
            optimizers.Adam(0.01), optimizers.RMSprop(0.01), optimizers.RMSprop(0.01, momentum=0.5)]


@pytest.mark.parametrize("size", [10, 100_003])  # the serial kernel and the parallel blocks
@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_a_non_finite_gradient_is_reported_by_every_update(size, bad_value):
    """The model drops its own pass over the gradients: every rule must carry a NaN or an
    infinity of the gradient into the weight, where the update's flag sees it."""
    for opt in _every_optimizer():
        p, g = _big(5, size)
        g[size // 2] = bad_value
        assert opt.step([p], [g]) is False, opt
        p, g = _big(5, size)
        assert optimizers.get(opt.name).step([p], [g]) is True


@pytest.mark.parametrize("size", [10, 100_003])
def test_an_overflowing_update_is_reported_and_the_backup_is_the_old_weights(size):
    for opt in _every_optimizer():
        opt.learning_rate = 3e38
        p, g = _big(6, size)
        g[-1] = 1e3
        before = p.copy()
        backup = [np.empty_like(p)]
        assert opt.step([p], [g], backup) is False, opt
        assert np.array_equal(backup[0], before)
