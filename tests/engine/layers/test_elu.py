"""ELU layer: Keras config, forward against numpy, gradients, in a model."""

import numpy as np
import pytest
from layer_checks import analysed, built, check_gradients, keras_output, round_trip, run, trains_in_sequential

from visualcnn.engine import ConfigError, layers as L


def test_keras_defaults_and_config():
    assert L.ELU().config == {"alpha": 1.0}
    assert L.ELU().get_config() == {"name": None, "alpha": 1.0, "trainable": True}
    keras_config = {"name": "elu", "alpha": 0.5, "trainable": True, "dtype": "float32"}
    assert L.layer_from_config("ELU", keras_config).config == {"alpha": 0.5}
    for layer in (L.ELU(), L.ELU(0.5, name="e")):
        round_trip(layer)


def test_shape_params_derivation():
    inference = L.ELU(0.5).infer((None, 5, 4, 3))
    assert inference.output_shape == (None, 5, 4, 3) and inference.params == 0
    assert inference.derivation[0] == "every value: y = x if x > 0 else 0.5*(exp(x) - 1)"


@pytest.mark.parametrize("alpha", [1.0, 0.5, 2.0])
def test_forward_and_gradients(alpha):
    layer = built(L.ELU(alpha), (4, 3, 2))
    x = np.random.default_rng(0).uniform(-4, 3, (2, 4, 3, 2)).astype(np.float32)
    x = np.where(np.abs(x) < 0.05, x + 0.1, x).astype(np.float32)
    expected = np.where(x > 0, x, alpha * np.expm1(x.astype(np.float64)))
    np.testing.assert_allclose(run(layer, x), expected, rtol=1e-6, atol=1e-7)
    check_gradients(layer, x)


def test_in_a_sequential_and_the_analysis():
    trains_in_sequential([L.ELU()])
    analysed((4,), [L.Dense(3), L.ELU(0.3), L.Dense(2)])


@pytest.mark.parametrize("make,message", [
    (lambda: L.ELU("1"), "ELU: argument 'alpha' expected a finite number, received '1'"),
    (lambda: L.ELU(float("nan")), "argument 'alpha' expected a finite number, received nan"),
])
def test_bad_configs(make, message):
    with pytest.raises(ConfigError) as info:
        make()
    assert message in str(info.value)


@pytest.mark.parametrize("alpha", [1.0, 0.3])
def test_live_keras(alpha):
    x = np.random.default_rng(1).uniform(-5, 3, (2, 4, 5, 3)).astype(np.float32)
    ours = run(built(L.ELU(alpha), (4, 5, 3)), x)
    np.testing.assert_allclose(ours, keras_output("ELU", {"alpha": alpha}, x), rtol=1e-6, atol=1e-7)
