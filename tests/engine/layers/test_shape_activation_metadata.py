"""The eleven shape and activation layers as the builder sees them: registered, Keras names,
family, a student's explanation and a starter config that works where a block is dropped."""

import pytest
from layer_checks import live_keras

from visualcnn.engine import Sequential, layers as L
from visualcnn.engine.layers import LAYER_CLASSES, snake_case

# class name -> (family, Keras's default layer name, verified with Keras 3.15.1)
LAYERS = {
    "ZeroPadding2D": ("reshaping", "zero_padding2d"), "Cropping2D": ("reshaping", "cropping2d"),
    "UpSampling2D": ("reshaping", "up_sampling2d"), "Reshape": ("reshaping", "reshape"),
    "Permute": ("reshaping", "permute"), "Rescaling": ("reshaping", "rescaling"),
    "ReLU": ("activation", "re_lu"), "LeakyReLU": ("activation", "leaky_re_lu"), "PReLU": ("activation", "p_re_lu"),
    "ELU": ("activation", "elu"), "Softmax": ("activation", "softmax"),
}


@pytest.mark.parametrize("class_name", sorted(LAYERS))
def test_registered_with_family_explanation_and_keras_name(class_name):
    cls = LAYER_CLASSES[class_name]
    family, keras_name = LAYERS[class_name]
    assert cls.family == family and cls.in_palette
    assert cls.explanation and "\n" not in cls.explanation
    assert snake_case(class_name) == keras_name


@pytest.mark.parametrize("class_name", sorted(LAYERS))
def test_starter_config_works_after_a_conv_on_mnist(class_name):
    layer = L.layer_from_config(class_name, dict(LAYER_CLASSES[class_name].starter_config))
    model = Sequential([L.Input(shape=(28, 28, 1)), L.Conv2D(8, 3), layer])
    report = model.analyse()
    assert report.error is None, report.error
    assert layer.describe()


# (class name, constructor arguments, input shape) covering every argument of every layer
KERAS_CASES = [
    ("ZeroPadding2D", {"padding": ((0, 2), (3, 1))}, (5, 4, 3)), ("Cropping2D", {"cropping": (2, 1)}, (7, 6, 2)),
    ("UpSampling2D", {"size": (3, 2), "interpolation": "bilinear"}, (5, 4, 3)),
    ("UpSampling2D", {"size": (2, 3), "interpolation": "bicubic"}, (5, 4, 3)),
    ("Reshape", {"target_shape": (2, -1, 3)}, (5, 4, 3)), ("Permute", {"dims": (3, 1, 2)}, (5, 4, 3)),
    ("Rescaling", {"scale": 1 / 127.5, "offset": -1.0}, (5, 4, 3)),
    ("ReLU", {"max_value": 6.0, "negative_slope": 0.1, "threshold": 0.5}, (5, 4, 3)),
    ("LeakyReLU", {"negative_slope": 0.05}, (5, 4, 3)),
    ("PReLU", {"alpha_initializer": "ones", "shared_axes": [1, 2]}, (5, 4, 3)),
    ("ELU", {"alpha": 0.5}, (5, 4, 3)), ("Softmax", {"axis": [1, 2]}, (5, 4, 3)),
]


@pytest.mark.parametrize("class_name,kwargs,in_shape", KERAS_CASES, ids=[c[0] for c in KERAS_CASES])
def test_live_keras_config_reads_back_with_keras_shape_and_params(class_name, kwargs, in_shape):
    keras = live_keras()
    keras_layer = getattr(keras.layers, class_name)(**kwargs)
    out = keras_layer(keras.Input(in_shape))
    ours = L.layer_from_config(class_name, keras_layer.get_config())  # dtype policy, data_format and all
    inference = ours.infer((None, *in_shape))
    assert inference.output_shape == tuple(out.shape)
    assert inference.params == keras_layer.count_params()
    assert [w.shape for w in inference.weights] == [tuple(w.shape) for w in keras_layer.weights]


@pytest.mark.parametrize("class_name,kwargs,in_shape", KERAS_CASES, ids=[c[0] for c in KERAS_CASES])
def test_live_keras_gradients_equal_torch_autograd(class_name, kwargs, in_shape):
    import numpy as np
    from layer_checks import built, compare_with_keras_gradients

    layer = built(L.layer_from_config(class_name, kwargs), in_shape, seed=1)
    x = np.random.default_rng(2).uniform(-3, 8, (3, *in_shape)).astype(np.float32)
    # away from relu's kinks (0, the threshold 0.5, the cap 6), where the two may pick different sides
    for kink in (0.0, 0.5, 6.0):
        x = np.where(np.abs(x - kink) < 0.01, x + 0.05, x).astype(np.float32)
    # bicubic: 16 taps with negative weights, summed in float32 in another order than torch's
    compare_with_keras_gradients(layer, class_name, kwargs, x, atol=5e-6 if "interpolation" in kwargs else 1e-6)


def _random_config(rng, class_name):
    """A random config of the kind a Keras user writes, valid or not for the input."""
    def side():
        return rng.randint(0, 4)

    pick = rng.choice
    return {
        "ZeroPadding2D": lambda: {"padding": pick([side(), (side(), side()), ((side(), side()), (side(), side()))])},
        "Cropping2D": lambda: {"cropping": pick([side(), (side(), side()), ((side(), side()), (side(), side()))])},
        "UpSampling2D": lambda: {"size": pick([rng.randint(1, 3), (rng.randint(1, 3), rng.randint(1, 3))]),
                                 "interpolation": pick(["nearest", "bilinear", "bicubic"])},
        "Reshape": lambda: {"target_shape": pick([(-1,), (rng.randint(1, 8), -1), (2, -1, 3), (4, 5, 3), (60,)])},
        "Permute": lambda: {"dims": tuple(rng.sample([1, 2, 3], 3))},
        "Rescaling": lambda: {"scale": rng.uniform(-2, 2), "offset": rng.uniform(-1, 1)},
        "ReLU": lambda: {"max_value": pick([None, rng.uniform(0, 6)]), "negative_slope": pick([0.0, rng.random()]),
                         "threshold": pick([0.0, rng.random()])},
        "LeakyReLU": lambda: {"negative_slope": rng.random()},
        "PReLU": lambda: {"shared_axes": pick([None, [1], [3], [1, 2], [1, 2, 3], 2]),
                          "alpha_initializer": pick(["zeros", "ones", "he_normal"])},
        "ELU": lambda: {"alpha": rng.uniform(-1, 2)},
        "Softmax": lambda: {"axis": pick([-1, 1, 2, 3, -2, [1, 2], [2, 3], [-1]])},
    }[class_name]()


def test_live_keras_random_configs_agree_on_shape_params_or_refusal():
    import random

    keras = live_keras()
    rng = random.Random(11)
    for _ in range(150):
        class_name = rng.choice(sorted(LAYERS))
        config = _random_config(rng, class_name)
        in_shape = rng.choice([(5, 4, 3), (6, 6, 2), (3, 7, 1)])
        try:
            keras_layer = getattr(keras.layers, class_name)(**config)
            out = keras_layer(keras.Input(in_shape))
            expected = (tuple(out.shape), keras_layer.count_params())
            config = keras_layer.get_config()  # what a Keras file holds
        except ValueError:
            expected = "refused"
        try:
            inference = L.layer_from_config(class_name, config).infer((None, *in_shape))
            got = (inference.output_shape, inference.params)
        except L.ConfigError:
            got = "refused"
        assert got == expected, (class_name, config, in_shape)
