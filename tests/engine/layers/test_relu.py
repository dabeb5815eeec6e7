"""ReLU and LeakyReLU layers: Keras config, Keras's relu formula, gradients, fusion, in a model."""

import numpy as np
import pytest
from layer_checks import (analysed, built, check_gradients, keras_output, round_trip, run, trains_in_sequential)

from visualcnn.engine import ConfigError, Sequential, layers as L

RELU_CONFIGS = [
    {},
    {"max_value": 6.0},
    {"negative_slope": 0.1},
    {"threshold": 0.5},
    {"max_value": 1.5, "negative_slope": 0.2, "threshold": 0.5},
    {"max_value": 0.0},
]


def _relu_reference(x, max_value=None, negative_slope=0.0, threshold=0.0):
    """Keras's definition (keras/src/activations/activations.py, ReLU.static_call)."""
    x = x.astype(np.float64)
    y = np.where(x > threshold, x, 0.0)
    if max_value is not None:
        y = np.clip(y, 0.0, max_value)
    return y - negative_slope * np.maximum(threshold - x, 0.0)


def _away_from_kinks(x, kinks, gap=0.05):
    for k in kinks:
        x = np.where(np.abs(x - k) < gap, x + 2 * gap, x)
    return x.astype(np.float32)


def test_keras_defaults_and_config():
    relu = L.ReLU()
    assert relu.config == {"max_value": None, "negative_slope": 0.0, "threshold": 0.0}
    assert relu.get_config() == {"name": None, "trainable": True, "max_value": None, "negative_slope": 0.0,
                                 "threshold": 0.0}
    keras_config = {"name": "re_lu", "trainable": True, "dtype": {"module": "keras", "class_name": "DTypePolicy",
                    "config": {"name": "float32"}, "registered_name": None}, "max_value": 6.0,
                    "negative_slope": 0.0, "threshold": 0.0}
    assert L.layer_from_config("ReLU", keras_config).config["max_value"] == 6.0
    assert L.LeakyReLU().config == {"negative_slope": 0.3}  # Keras 3's default (the activation's is 0.2)
    assert L.LeakyReLU().get_config() == {"name": None, "trainable": True, "negative_slope": 0.3}
    for layer in (relu, L.ReLU(6, 0.1, 0.5, name="r"), L.LeakyReLU(0.01), L.LeakyReLU(trainable=False)):
        round_trip(layer)


def test_leaky_relu_reads_keras2_alpha():
    assert L.layer_from_config("LeakyReLU", {"name": "leaky_re_lu", "trainable": True, "dtype": "float32",
                                             "alpha": 0.1}).config["negative_slope"] == 0.1
    assert L.LeakyReLU(alpha=0.2).get_config(compact=True) == {"negative_slope": 0.2}
    with pytest.raises(ConfigError, match="give the slope once, as 'negative_slope'"):
        L.LeakyReLU(negative_slope=0.1, alpha=0.2)


def test_shapes_params_derivation():
    for layer in (L.ReLU(), L.LeakyReLU()):
        inference = layer.infer((None, 5, 4, 3))
        assert inference.output_shape == (None, 5, 4, 3) and inference.params == 0 and inference.field.size == (1, 1)
    rule = "every value: y = min(x, 6) if x > 0.5 else 0.1*(x - 0.5)"
    assert L.ReLU(6, 0.1, 0.5).infer((None, 4)).derivation[0] == rule
    assert L.LeakyReLU().infer((None, 4)).derivation[0] == "every value: y = x if x > 0 else 0.3*x"


@pytest.mark.parametrize("config", RELU_CONFIGS, ids=str)
def test_relu_forward_and_gradients(config):
    layer = built(L.ReLU(**config), (4, 5, 3))
    rng = np.random.default_rng(0)
    kinks = [config.get("threshold", 0.0), 0.0] + ([config["max_value"]] if config.get("max_value") is not None else [])
    x = _away_from_kinks(rng.uniform(-3, 8, (2, 4, 5, 3)), kinks)
    np.testing.assert_allclose(run(layer, x), _relu_reference(x, **config), rtol=1e-6, atol=1e-6)
    check_gradients(layer, x, eps=1e-2)


@pytest.mark.parametrize("slope", [0.3, 0.01, 0.0, 2.0])
def test_leaky_relu_forward_and_gradients(slope):
    layer = built(L.LeakyReLU(slope), (7,))
    x = _away_from_kinks(np.random.default_rng(1).uniform(-3, 3, (4, 7)), [0.0])
    np.testing.assert_allclose(run(layer, x), np.where(x > 0, x, slope * x), rtol=1e-6)
    check_gradients(layer, x)


def test_plain_relu_is_fused_into_the_batch_normalization_before_with_the_same_results():
    def network(relu):
        model = Sequential([L.Input(shape=(8, 8, 2)), L.Conv2D(3, 3), L.BatchNormalization(), relu,
                            L.MaxPooling2D(), L.Flatten(), L.Dense(4)])
        model.build(seed=5)
        model.compile(optimizer="sgd", loss="mse")
        return model

    fused, plain = network(L.ReLU()), network(L.ReLU(threshold=1e-30))
    assert fused.layers[2].is_relu and not plain.layers[2].is_relu
    x = np.random.default_rng(2).standard_normal((6, 8, 8, 2)).astype(np.float32)
    y = np.random.default_rng(3).standard_normal((6, 4)).astype(np.float32)
    np.testing.assert_allclose(fused.predict(x), plain.predict(x), rtol=1e-5, atol=1e-6)
    loss_f, grads_f = fused.compute_gradients(x, y)
    loss_p, grads_p = plain.compute_gradients(x, y)
    assert fused._train_ctxs[2].saved["passthrough"] and not plain._train_ctxs[2].saved["passthrough"]
    assert loss_f == pytest.approx(loss_p, rel=1e-5)
    for a, b in zip(grads_f, grads_p):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # every layer's own output (activations) is the relu's output, not the normalised values
    acts = list(fused.activations(x).values())
    assert acts[2].min() >= 0.0 and acts[1].min() < 0.0


def test_in_a_sequential_and_the_analysis():
    trains_in_sequential([L.ReLU(max_value=6.0), L.LeakyReLU(0.1), L.ReLU()])
    report = analysed((8, 8, 1), [L.Conv2D(4, 3), L.ReLU(), L.LeakyReLU(), L.Flatten(), L.Dense(2)])
    assert [r.output_shape for r in report.rows[1:3]] == [(None, 6, 6, 4)] * 2


@pytest.mark.parametrize("make,message", [
    (lambda: L.ReLU(max_value=-1), "ReLU: argument 'max_value' expected >= 0, received -1"),
    (lambda: L.ReLU(negative_slope=-0.1), "argument 'negative_slope' expected >= 0, received -0.1"),
    (lambda: L.ReLU(negative_slope=None), "argument 'negative_slope' expected a finite number, received None"),
    (lambda: L.ReLU(threshold=-1.0), "argument 'threshold' expected >= 0"),
    (lambda: L.ReLU(max_value="6"), "argument 'max_value' expected a finite number or null, received '6'"),
    (lambda: L.ReLU(max_value=float("inf")), "argument 'max_value' expected a finite number or null, received inf"),
    (lambda: L.LeakyReLU(-0.2), "LeakyReLU: argument 'negative_slope' expected >= 0, received -0.2"),
    (lambda: L.LeakyReLU(slope=0.2), "unknown argument 'slope'"),
])
def test_bad_configs(make, message):
    with pytest.raises(ConfigError) as info:
        make()
    assert message in str(info.value)


@pytest.mark.parametrize("class_name,config", [("ReLU", c) for c in RELU_CONFIGS] +
                         [("LeakyReLU", {}), ("LeakyReLU", {"negative_slope": 0.05})], ids=str)
def test_live_keras(class_name, config):
    x = np.random.default_rng(4).uniform(-3, 8, (2, 4, 5, 3)).astype(np.float32)
    ours = run(built(L.layer_from_config(class_name, config), (4, 5, 3)), x)
    np.testing.assert_allclose(ours, keras_output(class_name, config, x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("make,message", [
    (lambda: L.ReLU(threshold=1e300), "ReLU: argument 'threshold' expected <= 3.4e+38, received 1e+300"),
    (lambda: L.ReLU(max_value=10**40), "argument 'max_value' expected <= 3.4e+38"),
    (lambda: L.LeakyReLU(1e39), "argument 'negative_slope' expected <= 3.4e+38"),
    (lambda: L.ReLU(True), "argument 'max_value' expected a finite number or null, received true"),
])
def test_values_beyond_float32_or_of_the_wrong_type_are_refused(make, message):
    with pytest.raises(ConfigError) as info:
        make()
    assert message in str(info.value) and "\n" not in str(info.value)


def test_fused_relu_after_an_add_feeding_two_branches_of_a_graph():
    from visualcnn.engine import Input, Model

    def network(relu):
        # the residual pattern: Add -> ReLU, whose output feeds two layers
        inputs = Input((7, 7, 2))
        skip = L.Conv2D(3, 1, name="skip")(inputs)
        x = L.Conv2D(3, 3, padding="same", name="conv")(inputs)
        x = relu(L.Add(name="add")([x, skip]))
        a = L.MaxPooling2D(name="pool")(x)
        b = L.AveragePooling2D(2, name="avg")(x)
        out = L.Dense(2, name="dense")(L.Flatten(name="flat")(L.Add(name="join")([a, b])))
        model = Model(inputs, out)
        model.build(seed=8)
        model.compile(optimizer="sgd", loss="mse")
        return model

    fused, plain = network(L.ReLU(name="relu")), network(L.ReLU(threshold=1e-30, name="relu"))
    x = np.random.default_rng(4).standard_normal((4, 7, 7, 2)).astype(np.float32)
    y = np.random.default_rng(5).standard_normal((4, 2)).astype(np.float32)
    np.testing.assert_allclose(fused.predict(x), plain.predict(x), rtol=1e-5, atol=1e-6)
    (lf, gf), (lp, gp) = fused.compute_gradients(x, y), plain.compute_gradients(x, y)
    relu_index = [layer.name for layer in fused.layers].index("relu")
    assert fused._train_ctxs[relu_index].saved["passthrough"]  # the Add applied it
    assert not plain._train_ctxs[relu_index].saved["passthrough"]
    assert lf == pytest.approx(lp, rel=1e-5)
    for a, b in zip(gf, gp):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
