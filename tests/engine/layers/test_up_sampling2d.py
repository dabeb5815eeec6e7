"""UpSampling2D: Keras config and shapes, nearest and bilinear against numpy, gradients, in a model."""

import numpy as np
import pytest
from layer_checks import (analysed, built, check_gradients, keras_output, keras_shape_and_params, round_trip, run,
                          trains_in_sequential)

from visualcnn.engine import ConfigError, layers as L

# (config, input shape) -> output shape, as Keras 3.15.1 gives them (no weights)
KERAS_SHAPES = [
    ({}, (5, 4, 3), (None, 10, 8, 3)),
    ({"size": (3, 2)}, (5, 4, 3), (None, 15, 8, 3)),
    ({"size": 3, "interpolation": "bilinear"}, (5, 4, 3), (None, 15, 12, 3)),
    ({"size": (1, 4), "interpolation": "bilinear"}, (3, 2, 1), (None, 3, 8, 1)),
    ({"size": (2, 3), "interpolation": "bicubic"}, (5, 4, 3), (None, 10, 12, 3)),
]


def _bilinear_reference(x, sh, sw):
    """Half-pixel bilinear resize in float64, written out per output cell."""
    n, h, w, c = x.shape
    out = np.zeros((n, h * sh, w * sw, c))
    for oy in range(h * sh):
        sy = max((oy + 0.5) / sh - 0.5, 0.0)
        y0 = int(np.floor(sy))
        y1, fy = min(y0 + 1, h - 1), sy - y0
        for ox in range(w * sw):
            sx = max((ox + 0.5) / sw - 0.5, 0.0)
            x0 = int(np.floor(sx))
            x1, fx = min(x0 + 1, w - 1), sx - x0
            out[:, oy, ox] = ((1 - fy) * ((1 - fx) * x[:, y0, x0] + fx * x[:, y0, x1])
                              + fy * ((1 - fx) * x[:, y1, x0] + fx * x[:, y1, x1]))
    return out


def _bicubic_reference(x, sh, sw, a=-0.75):
    """PyTorch's bicubic upsampling (align_corners=False) in float64, per output cell:
    four taps per axis around floor((o + 0.5) / s - 0.5), indices clamped to the image."""
    def weights(t):
        def near(d):
            return ((a + 2) * d - (a + 3)) * d * d + 1

        def far(d):
            return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
        return [far(t + 1), near(t), near(1 - t), far(2 - t)]

    n, h, w, c = x.shape
    out = np.zeros((n, h * sh, w * sw, c))
    for oy in range(h * sh):
        sy = (oy + 0.5) / sh - 0.5
        y0 = int(np.floor(sy))
        wy = weights(sy - y0)
        for ox in range(w * sw):
            sx = (ox + 0.5) / sw - 0.5
            x0 = int(np.floor(sx))
            wx = weights(sx - x0)
            for i in range(4):
                for j in range(4):
                    iy, ix = min(max(y0 - 1 + i, 0), h - 1), min(max(x0 - 1 + j, 0), w - 1)
                    out[:, oy, ox] += wy[i] * wx[j] * x[:, iy, ix]
    return out


def test_keras_defaults_and_config():
    layer = L.UpSampling2D()
    assert layer.config == {"size": (2, 2), "interpolation": "nearest"}
    assert layer.get_config() == {"name": None, "trainable": True, "size": [2, 2], "interpolation": "nearest"}
    keras_config = {"name": "up_sampling2d", "trainable": True, "dtype": "float32", "size": [3, 2],
                    "data_format": "channels_last", "interpolation": "bilinear"}
    assert L.layer_from_config("UpSampling2D", keras_config).config == {"size": (3, 2), "interpolation": "bilinear"}
    assert L.UpSampling2D(interpolation="Bilinear").config["interpolation"] == "bilinear"  # Keras lower-cases
    for layer in (L.UpSampling2D(), L.UpSampling2D((3, 2), interpolation="bilinear", name="up")):
        round_trip(layer)


@pytest.mark.parametrize("config,in_shape,out_shape", KERAS_SHAPES)
def test_shapes_as_keras(config, in_shape, out_shape):
    inference = L.UpSampling2D(**config).infer((None, *in_shape))
    assert inference.output_shape == out_shape and inference.params == 0


def test_derivation_and_receptive_field():
    inference = L.UpSampling2D((3, 2)).infer((None, 5, 4, 3))
    assert inference.derivation[:3] == ("out_h = 5*3 = 15", "out_w = 4*2 = 8", "each value is repeated in a 3x2 block")
    # neighbouring outputs are 1/3 and 1/2 of an input pixel apart; each reads one input
    assert inference.field.size == (1, 1) and inference.field.jump == (1 / 3, 0.5)
    assert inference.field.start == (-1 / 3, -0.25)
    bilinear = L.UpSampling2D((1, 2), interpolation="bilinear").infer((None, 5, 4, 3)).field
    assert bilinear.size == (1, 2)  # blends two columns; size 1 along rows is a plain copy


@pytest.mark.parametrize("size", [(2, 2), (3, 1), (1, 4)])
def test_nearest_forward_is_repeat_and_gradients(size):
    layer = built(L.UpSampling2D(size), (3, 4, 2))
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 2)).astype(np.float32)
    np.testing.assert_array_equal(run(layer, x), x.repeat(size[0], axis=1).repeat(size[1], axis=2))
    check_gradients(layer, x)


@pytest.mark.parametrize("size", [(2, 2), (3, 2), (1, 3)])
def test_bilinear_forward_and_gradients(size):
    layer = built(L.UpSampling2D(size, interpolation="bilinear"), (3, 4, 2))
    x = np.random.default_rng(1).standard_normal((2, 3, 4, 2)).astype(np.float32)
    np.testing.assert_allclose(run(layer, x), _bilinear_reference(x.astype(np.float64), *size), rtol=1e-5, atol=1e-6)
    check_gradients(layer, x)


@pytest.mark.parametrize("size", [(2, 2), (3, 2), (1, 4)])
def test_bicubic_forward_and_gradients(size):
    layer = built(L.UpSampling2D(size, interpolation="bicubic"), (4, 3, 2))
    x = np.random.default_rng(1).standard_normal((2, 4, 3, 2)).astype(np.float32)
    np.testing.assert_allclose(run(layer, x), _bicubic_reference(x.astype(np.float64), *size), rtol=1e-5, atol=2e-6)
    check_gradients(layer, x)
    assert L.UpSampling2D(size, interpolation="bicubic").infer((None, 4, 3, 2)).field.size == (
        4 if size[0] > 1 else 1, 4 if size[1] > 1 else 1)


def test_inference_and_training_kernels_agree():
    layer = built(L.UpSampling2D(2, interpolation="bilinear"), (3, 3, 2))
    x = np.random.default_rng(2).standard_normal((3, 3, 3, 2)).astype(np.float32)
    np.testing.assert_array_equal(run(layer, x, training=False), run(layer, x, training=True))


def test_in_a_sequential_and_the_analysis():
    trains_in_sequential([L.UpSampling2D(2), L.Conv2D(2, 3, activation="tanh"),
                          L.UpSampling2D(interpolation="bilinear")], in_shape=(4, 4, 1))
    report = analysed((7, 7, 16), [L.UpSampling2D(2), L.Conv2D(8, 3, padding="same"), L.UpSampling2D(2)])
    assert report.rows[-1].output_shape == (None, 28, 28, 8)


@pytest.mark.parametrize("make,message", [
    (lambda: L.UpSampling2D(0), "UpSampling2D: argument 'size' expected each value >= 1, received 0"),
    (lambda: L.UpSampling2D(-2), "argument 'size' expected each value >= 1"),
    (lambda: L.UpSampling2D(2.0), "argument 'size' expected an integer or a pair of integers"),
    (lambda: L.UpSampling2D(2, interpolation="lanczos3"),
     "argument 'interpolation' expected one of 'nearest', 'bilinear', 'bicubic', received 'lanczos3'"),
    (lambda: L.UpSampling2D(2, interpolation=3), "argument 'interpolation' expected one of"),
    (lambda: L.UpSampling2D().infer((None, 4, 4)), "needs an image-shaped input"),
])
def test_bad_configs(make, message):
    with pytest.raises(ConfigError) as info:
        make()
    assert message in str(info.value)


@pytest.mark.parametrize("config,in_shape,out_shape", KERAS_SHAPES)
def test_live_keras(config, in_shape, out_shape):
    assert keras_shape_and_params("UpSampling2D", config, in_shape) == (out_shape, 0)
    x = np.random.default_rng(3).standard_normal((2, *in_shape)).astype(np.float32)
    ours = run(built(L.UpSampling2D(**config), in_shape), x)
    np.testing.assert_allclose(ours, keras_output("UpSampling2D", config, x), rtol=1e-5, atol=1e-6)
