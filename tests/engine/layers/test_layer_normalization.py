"""LayerNormalization: Keras config and weight shapes, forward vs numpy, gradients, in a model, vs Keras."""

import numpy as np
import pytest
from layer_checks import (analysed, built, check_gradients, keras_output, keras_shape_and_params, round_trip, run,
                          trains_in_sequential)

from visualcnn.engine import ConfigError, layers as L

# (config, input shape) -> (output shape, params), as Keras 3.15.1 gives them
KERAS_SHAPES = [
    ({}, (5, 6, 8), ((None, 5, 6, 8), 16)),
    ({"axis": [1, 2, 3]}, (5, 6, 8), ((None, 5, 6, 8), 480)),
    ({"axis": [1, 3], "center": False}, (5, 6, 8), ((None, 5, 6, 8), 40)),
    ({}, (10,), ((None, 10), 20)),
]


def _reference(x, gamma, beta, axes, eps=1e-3):
    """numpy in float64: mean and biased variance over axes; gamma / beta broadcast over them."""
    x = x.astype(np.float64)
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    shape = [x.shape[a] if a in axes else 1 for a in range(x.ndim)]
    y = (x - mean) / np.sqrt(var + eps)
    if gamma is not None:
        y = y * gamma.reshape(shape)
    if beta is not None:
        y = y + beta.reshape(shape)
    return y


def test_keras_defaults_and_config():
    layer = L.LayerNormalization()
    assert layer.get_config() == {"name": None, "trainable": True, "axis": -1, "epsilon": 0.001, "center": True,
                                  "scale": True, "beta_initializer": "zeros", "gamma_initializer": "ones"}
    # Keras 3.15.1 to_json of a built layer: axis became a list, rms_scaling written
    keras_config = {"name": "layer_normalization", "trainable": True, "dtype": {"module": "keras",
                    "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None},
                    "axis": [-1], "epsilon": 0.001, "center": True, "scale": True, "rms_scaling": False,
                    "beta_initializer": {"module": "keras.initializers", "class_name": "Zeros", "config": {},
                                         "registered_name": None},
                    "gamma_initializer": {"module": "keras.initializers", "class_name": "Ones", "config": {},
                                          "registered_name": None},
                    "beta_regularizer": None, "gamma_regularizer": None, "beta_constraint": None,
                    "gamma_constraint": None}
    loaded = L.layer_from_config("LayerNormalization", keras_config)
    assert loaded.config["axis"] == (-1,) and loaded.get_config()["axis"] == [-1]
    for layer in (loaded, L.LayerNormalization(axis=[1, 2, 3], epsilon=1e-5, center=False, name="ln")):
        round_trip(layer)
    with pytest.raises(ConfigError, match="rms_scaling"):
        L.layer_from_config("LayerNormalization", {**keras_config, "rms_scaling": True})
    assert L.LayerNormalization.family == "normalization"


@pytest.mark.parametrize("config,in_shape,expected", KERAS_SHAPES)
def test_shapes_and_params_as_keras(config, in_shape, expected):
    inference = L.LayerNormalization(**config).infer((None, *in_shape))
    assert (inference.output_shape, inference.params) == expected


def test_weight_shapes_follow_keras_and_bad_axes_are_refused():
    specs = L.LayerNormalization(axis=[-1, 1]).infer((None, 5, 6, 8)).weights
    assert [(w.name, w.shape) for w in specs] == [("gamma", (8, 5)), ("beta", (8, 5))]  # Keras sorts as given
    with pytest.raises(ConfigError, match="batch axis"):
        L.LayerNormalization(axis=0).infer((None, 5, 6, 8))
    with pytest.raises(ConfigError, match="out of bounds"):
        L.LayerNormalization(axis=4).infer((None, 5, 6, 8))
    with pytest.raises(ConfigError, match="twice"):
        L.LayerNormalization(axis=[3, -1]).infer((None, 5, 6, 8))


def test_derivation_and_receptive_field():
    inference = L.LayerNormalization().infer((None, 5, 6, 8))
    assert inference.derivation[0].startswith("mean and variance over axis -1 (8 values)")
    assert inference.derivation[1] == "params = 2*8 = 16 (gamma and beta)"
    after_conv = analysed((8, 8, 1), [L.Conv2D(2, 3), L.LayerNormalization()]).rows
    assert after_conv[1].inference.field == after_conv[0].inference.field  # channels only: per position
    rows = analysed((8, 8, 1), [L.Conv2D(2, 3), L.LayerNormalization(axis=[1, 2, 3])]).rows
    spatial = rows[1].inference
    assert spatial.field == rows[0].inference.field  # a window, as BatchNormalization's
    assert "mean and variance over axes [1, 2, 3]" in spatial.derivation[0]
    assert "mix in every position" in spatial.derivation[1]


@pytest.mark.parametrize("axis,in_shape", [(-1, (5, 6, 8)), ((1, 2, 3), (5, 6, 8)), ((1, 3), (5, 6, 8)),
                                           ((-1, 1), (5, 6, 8)), (-1, (7,))])
def test_forward_matches_numpy_and_gradients(axis, in_shape):
    layer = built(L.LayerNormalization(axis=list(axis) if isinstance(axis, tuple) else axis), in_shape)
    x = np.random.default_rng(5).standard_normal((3, *in_shape)).astype(np.float32) * 2 + 1
    axes = tuple(sorted(a % (len(in_shape) + 1) for a in (axis if isinstance(axis, tuple) else (axis,))))
    gamma, beta = layer.weights
    # Keras's gamma holds the axes in their given order, reshaped (not transposed) over them
    np.testing.assert_allclose(run(layer, x), _reference(x, gamma, beta, axes), rtol=1e-5, atol=2e-5)
    check_gradients(layer, x)


def test_without_center_or_scale_and_epsilon():
    layer = built(L.LayerNormalization(center=False, scale=False, epsilon=0.5), (4, 3))
    assert layer.weights == []
    x = np.random.default_rng(1).standard_normal((2, 4, 3)).astype(np.float32)
    np.testing.assert_allclose(run(layer, x), _reference(x, None, None, (2,), eps=0.5), rtol=1e-5, atol=1e-6)
    check_gradients(layer, x)
    only_gamma = built(L.LayerNormalization(center=False), (4, 3))
    check_gradients(only_gamma, x)


def test_in_a_model_and_the_analysis():
    trains_in_sequential([L.LayerNormalization()])
    trains_in_sequential([L.LayerNormalization(axis=[1, 2, 3])])
    report = analysed((8, 8, 1), [L.Conv2D(4, 3), L.LayerNormalization(), L.Flatten(), L.Dense(2)])
    assert report.rows[1].inference.params == 8


def test_live_keras_shapes_and_outputs():
    for config, in_shape, expected in KERAS_SHAPES:
        assert keras_shape_and_params("LayerNormalization", config, in_shape) == expected
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((3, 5, 6, 8)) * 2 + 1).astype(np.float32)
    # (Keras's torch backend fails on a non-trailing run of axes such as [1, 2]: not compared)
    for config in ({}, {"axis": [1, 2, 3]}, {"axis": [1, 3]}, {"axis": [-1, 1], "epsilon": 0.1}, {"scale": False}):
        layer = built(L.LayerNormalization(**config), (5, 6, 8), seed=4)
        np.testing.assert_allclose(run(layer, x), keras_output("LayerNormalization", config, x, layer.weights),
                                   rtol=1e-5, atol=1e-5)


def test_live_torch_gradients():
    """dx, dgamma and dbeta equal PyTorch autograd's (layer_norm over the last axes)."""
    torch = pytest.importorskip("torch")
    from visualcnn.engine.layers.base import Context

    rng = np.random.default_rng(6)
    x = (rng.standard_normal((4, 5, 6, 8)) * 2 + 1).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    for axis, normalized in ((-1, (8,)), ([1, 2, 3], (5, 6, 8))):
        layer = built(L.LayerNormalization(axis=axis), (5, 6, 8), seed=2)
        ctx = Context()
        y = np.array(layer.forward(x, ctx, training=True))
        dx = np.array(layer.backward(dy, ctx))
        tx = torch.tensor(x, requires_grad=True)
        tg, tb = (torch.tensor(w, requires_grad=True) for w in layer.weights)
        ty = torch.nn.functional.layer_norm(tx, normalized, tg, tb, eps=1e-3)
        ty.backward(torch.tensor(dy))
        np.testing.assert_allclose(y, ty.detach().numpy(), atol=1e-5)
        np.testing.assert_allclose(dx, tx.grad.numpy(), atol=1e-5)
        np.testing.assert_allclose(ctx.grads["gamma"], tg.grad.numpy(), atol=1e-5, rtol=1e-5)
        np.testing.assert_allclose(ctx.grads["beta"], tb.grad.numpy(), atol=1e-5, rtol=1e-5)


def test_serial_kernels_give_the_same_output():
    """A predict from a second thread takes the serial twins (parallel.use_serial())."""
    from visualcnn.engine import parallel

    layer = built(L.LayerNormalization(), (20, 20, 200))  # big enough for the parallel kernels
    x = np.random.default_rng(7).standard_normal((2, 20, 20, 200)).astype(np.float32)
    expected = run(layer, x)
    with parallel.serial_inference():
        np.testing.assert_array_equal(run(layer, x), expected)
