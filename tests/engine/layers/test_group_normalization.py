"""GroupNormalization: Keras config and shapes, the groups error, forward vs numpy, gradients, vs Keras."""

import numpy as np
import pytest
from layer_checks import (analysed, built, check_gradients, keras_output, keras_shape_and_params, round_trip, run,
                          trains_in_sequential)

from visualcnn.engine import ConfigError, layers as L

# (config, input shape) -> (output shape, params), as Keras 3.15.1 gives them
KERAS_SHAPES = [
    ({"groups": 4}, (5, 6, 8), ((None, 5, 6, 8), 16)),
    ({"groups": -1, "scale": False}, (5, 6, 8), ((None, 5, 6, 8), 8)),
    ({"groups": 3, "axis": 2}, (5, 6, 8), ((None, 5, 6, 8), 12)),
    ({}, (4, 4, 64), ((None, 4, 4, 64), 128)),
]


def _reference(x, groups, gamma, beta, axis=-1, eps=1e-3):
    """numpy in float64: the channels of `axis` split into groups, each example and group
    normalised over everything else."""
    x = np.moveaxis(x.astype(np.float64), axis, -1)
    n, c = x.shape[0], x.shape[-1]
    g = x.reshape(n, -1, groups, c // groups)
    mean = g.mean(axis=(1, 3), keepdims=True)
    var = g.var(axis=(1, 3), keepdims=True)
    y = ((g - mean) / np.sqrt(var + eps)).reshape(x.shape)
    if gamma is not None:
        y = y * gamma
    if beta is not None:
        y = y + beta
    return np.moveaxis(y, -1, axis)


def test_keras_defaults_and_config():
    layer = L.GroupNormalization()
    assert layer.get_config() == {"name": None, "trainable": True, "groups": 32, "axis": -1, "epsilon": 0.001,
                                  "center": True, "scale": True, "beta_initializer": "zeros",
                                  "gamma_initializer": "ones"}
    keras_config = {"name": "group_normalization", "trainable": True, "dtype": {"module": "keras",
                    "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None},
                    "groups": 4, "axis": -1, "epsilon": 0.001, "center": True, "scale": True,
                    "beta_initializer": {"module": "keras.initializers", "class_name": "Zeros", "config": {},
                                         "registered_name": None},
                    "gamma_initializer": {"module": "keras.initializers", "class_name": "Ones", "config": {},
                                          "registered_name": None},
                    "beta_regularizer": None, "gamma_regularizer": None, "beta_constraint": None,
                    "gamma_constraint": None}
    loaded = L.layer_from_config("GroupNormalization", keras_config)
    assert loaded.config["groups"] == 4
    for layer in (loaded, L.GroupNormalization(-1, axis=2, center=False, name="gn")):
        round_trip(layer)
    with pytest.raises(ConfigError, match="groups"):
        L.GroupNormalization(0)
    assert L.GroupNormalization.family == "normalization"


@pytest.mark.parametrize("config,in_shape,expected", KERAS_SHAPES)
def test_shapes_and_params_as_keras(config, in_shape, expected):
    inference = L.GroupNormalization(**config).infer((None, *in_shape))
    assert (inference.output_shape, inference.params) == expected


def test_channels_not_divisible_names_both():
    with pytest.raises(ConfigError, match=r"groups = 3 does not divide the 8 channels.*1, 2, 4, 8"):
        L.GroupNormalization(3).infer((None, 5, 6, 8))
    with pytest.raises(ConfigError, match=r"32 groups for only 8 channels"):
        L.GroupNormalization().infer((None, 5, 6, 8))  # Keras: cannot be more than the channels
    report = analyse_error((6, 6, 1), [L.Conv2D(6, 3), L.GroupNormalization(4)])
    assert "GroupNormalization" in report and "6 channels" in report


def analyse_error(in_shape, layers) -> str:
    from visualcnn.engine.analysis import analyse

    report = analyse(in_shape, layers)
    assert report.error is not None
    return report.error


def test_derivation_and_receptive_field():
    inference = L.GroupNormalization(4).infer((None, 5, 6, 8))
    assert inference.derivation[0] == "8 channels in 4 groups of 2: each example and group is normalised over 60 values"
    rows = analysed((8, 8, 1), [L.Conv2D(8, 3), L.GroupNormalization(4), L.Flatten()]).rows
    assert rows[1].inference.field == rows[0].inference.field  # a window, as BatchNormalization's
    assert "mix in every position" in rows[1].inference.derivation[1]
    assert rows[2].inference.field.size == (8, 8)  # Flatten then sees the whole 8x8 input


@pytest.mark.parametrize("config,in_shape", [({"groups": 4}, (5, 6, 8)), ({"groups": -1}, (3, 4, 6)),
                                             ({"groups": 1}, (3, 4, 6)), ({"groups": 3, "axis": 2}, (5, 6, 8)),
                                             ({"groups": 5, "axis": -3}, (5, 6, 8)), ({"groups": 2}, (6,))])
def test_forward_matches_numpy_and_gradients(config, in_shape):
    layer = built(L.GroupNormalization(**config), in_shape)
    x = np.random.default_rng(5).standard_normal((3, *in_shape)).astype(np.float32) * 2 + 1
    axis = config.get("axis", -1)
    groups = config["groups"] if config["groups"] != -1 else in_shape[axis]
    gamma, beta = layer.weights
    np.testing.assert_allclose(run(layer, x), _reference(x, groups, gamma, beta, axis), rtol=1e-5, atol=2e-5)
    check_gradients(layer, x)


def test_without_center_or_scale():
    x = np.random.default_rng(1).standard_normal((2, 3, 3, 4)).astype(np.float32)
    plain = built(L.GroupNormalization(2, center=False, scale=False, epsilon=0.2), (3, 3, 4))
    assert plain.weights == []
    np.testing.assert_allclose(run(plain, x), _reference(x, 2, None, None, eps=0.2), rtol=1e-5, atol=1e-6)
    check_gradients(plain, x)
    check_gradients(built(L.GroupNormalization(2, scale=False), (3, 3, 4)), x)


def test_in_a_model_and_the_analysis():
    trains_in_sequential([L.GroupNormalization(2)])
    report = analysed((8, 8, 1), [L.Conv2D(4, 3), L.GroupNormalization(2), L.Flatten(), L.Dense(2)])
    assert report.rows[1].inference.params == 8


def test_live_keras_shapes_and_outputs():
    for config, in_shape, expected in KERAS_SHAPES:
        assert keras_shape_and_params("GroupNormalization", config, in_shape) == expected
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((3, 5, 6, 8)) * 2 + 1).astype(np.float32)
    for config in ({"groups": 4}, {"groups": -1}, {"groups": 2, "axis": 2}, {"groups": 5, "axis": -3, "scale": False},
                   {"groups": 1, "epsilon": 0.1}):
        layer = built(L.GroupNormalization(**config), (5, 6, 8), seed=4)
        np.testing.assert_allclose(run(layer, x), keras_output("GroupNormalization", config, x, layer.weights),
                                   rtol=1e-5, atol=1e-5)


def test_live_torch_gradients():
    """dx, dgamma and dbeta equal PyTorch autograd's group_norm (channels first there)."""
    torch = pytest.importorskip("torch")
    from visualcnn.engine.layers.base import Context

    rng = np.random.default_rng(6)
    x = (rng.standard_normal((4, 5, 6, 8)) * 2 + 1).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    for groups in (4, 8, 1):
        layer = built(L.GroupNormalization(groups), (5, 6, 8), seed=2)
        ctx = Context()
        y = np.array(layer.forward(x, ctx, training=True))
        dx = np.array(layer.backward(dy, ctx))
        tx = torch.tensor(x.transpose(0, 3, 1, 2).copy(), requires_grad=True)
        tg, tb = (torch.tensor(w, requires_grad=True) for w in layer.weights)
        ty = torch.nn.functional.group_norm(tx, groups, tg, tb, eps=1e-3)
        ty.backward(torch.tensor(dy.transpose(0, 3, 1, 2).copy()))
        np.testing.assert_allclose(y, ty.detach().numpy().transpose(0, 2, 3, 1), atol=1e-5)
        np.testing.assert_allclose(dx, tx.grad.numpy().transpose(0, 2, 3, 1), atol=1e-5)
        np.testing.assert_allclose(ctx.grads["gamma"], tg.grad.numpy(), atol=1e-5, rtol=1e-5)
        np.testing.assert_allclose(ctx.grads["beta"], tb.grad.numpy(), atol=1e-5, rtol=1e-5)


def test_serial_kernels_give_the_same_output():
    """A predict from a second thread takes the serial twins (parallel.use_serial())."""
    from visualcnn.engine import parallel

    layer = built(L.GroupNormalization(8), (20, 20, 200))  # big enough for the parallel kernels
    x = np.random.default_rng(7).standard_normal((2, 20, 20, 200)).astype(np.float32)
    expected = run(layer, x)
    with parallel.serial_inference():
        np.testing.assert_array_equal(run(layer, x), expected)
