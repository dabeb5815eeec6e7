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
