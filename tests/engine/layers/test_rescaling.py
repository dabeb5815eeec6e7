"""Rescaling: Keras config, x*scale + offset in float32, gradient, in a model."""

import numpy as np
import pytest
from layer_checks import analysed, built, check_gradients, keras_output, round_trip, run, trains_in_sequential

from visualcnn.engine import ConfigError, layers as L


def test_keras_defaults_and_config():
    layer = L.Rescaling(1 / 255)
    assert layer.config == {"scale": 1 / 255, "offset": 0.0}
    assert layer.get_config() == {"name": None, "trainable": True, "scale": 1 / 255, "offset": 0.0}
    keras_config = {"name": "rescaling", "trainable": True, "dtype": "float32", "scale": 0.00392156862745098,
                    "offset": 0.0}
    assert L.layer_from_config("Rescaling", keras_config).config["scale"] == 0.00392156862745098
    assert L.Rescaling(2).config["scale"] == 2.0
    for layer in (layer, L.Rescaling(1 / 127.5, -1, name="r")):
        round_trip(layer)


def test_shape_and_derivation():
    inference = L.Rescaling(1 / 127.5, -1.0).infer((None, 28, 28, 1))
    assert inference.output_shape == (None, 28, 28, 1) and inference.params == 0
    assert inference.derivation[0] == "every value: y = x/127.5 - 1"
    assert L.Rescaling(1 / 255).describe() == "x/255"
    assert L.Rescaling(0.3, 2).describe() == "x*0.3 + 2"


@pytest.mark.parametrize("scale,offset", [(1 / 255, 0.0), (1 / 127.5, -1.0), (-2.0, 0.5)])
def test_forward_in_float32_and_gradient(scale, offset):
    layer = built(L.Rescaling(scale, offset), (4, 3, 2))
    x = np.random.default_rng(0).uniform(0, 255, (2, 4, 3, 2)).astype(np.float32)
    np.testing.assert_allclose(run(layer, x), x * np.float32(scale) + np.float32(offset), rtol=1e-6, atol=1e-6)
    check_gradients(layer, x / 50)


def test_in_a_sequential_and_the_analysis():
    trains_in_sequential([L.Rescaling(0.5, 0.1)])
    analysed((28, 28, 1), [L.Rescaling(1 / 255), L.Conv2D(4, 3), L.Flatten(), L.Dense(10)])


@pytest.mark.parametrize("make,message", [
    (lambda: L.Rescaling(), "Rescaling: argument 'scale' is required"),
    (lambda: L.Rescaling([1.0, 2.0, 3.0]), "argument 'scale' expected a finite number, received [1.0, 2.0, 3.0]"),
    (lambda: L.Rescaling(float("inf")), "argument 'scale' expected a finite number, received inf"),
    (lambda: L.Rescaling(1.0, offset="0"), "argument 'offset' expected a finite number, received '0'"),
])
def test_bad_configs(make, message):
    with pytest.raises(ConfigError) as info:
        make()
    assert message in str(info.value)


@pytest.mark.parametrize("scale,offset", [(1 / 255, 0.0), (1 / 127.5, -1.0)])
def test_live_keras(scale, offset):
    x = np.random.default_rng(1).uniform(0, 255, (2, 4, 5, 3)).astype(np.float32)
    ours = run(built(L.Rescaling(scale, offset), (4, 5, 3)), x)
    np.testing.assert_allclose(ours, keras_output("Rescaling", {"scale": scale, "offset": offset}, x),
                               rtol=1e-6, atol=1e-6)


def test_values_beyond_float32_are_refused():
    with pytest.raises(ConfigError, match=r"argument 'scale' expected >= -3.4e\+38, received -1e\+39"):
        L.Rescaling(-1e39)
    with pytest.raises(ConfigError, match=r"argument 'offset' expected <= 3.4e\+38"):
        L.Rescaling(1.0, 1e300)
