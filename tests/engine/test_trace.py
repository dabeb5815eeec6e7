"""trace(model, x, layer, index) (issue 13 item 1): the recomputed value equals
model.activations(x)[layer] at that index within 1e-5, for every kind of layer, and the
receptive field holds every input pixel the value depends on.

Weights are random (biases and BatchNormalization statistics too), so a wrong kernel
orientation, padding side, channel order or bias would show."""

from __future__ import annotations

import numpy as np
import pytest

from visualcnn.engine import Input, Model, Sequential, load_model_file
from visualcnn.engine import layers as L
from visualcnn.engine.explain import trace
from visualcnn.resources import preset_dir


def randomise(model, seed=0):
    model.build()
    rng = np.random.default_rng(seed)
    weights = []
    for layer in model.layers:
        for spec, w in zip(getattr(layer, "weight_specs", ()), layer.weights):
            if spec.name == "moving_variance":
                weights.append(rng.uniform(0.5, 2.0, w.shape).astype(np.float32))
            else:
                weights.append(rng.normal(0, 0.5, w.shape).astype(np.float32))
    model.set_weights(weights)
    return model


def image(model, seed=1):
    return np.random.default_rng(seed).normal(0, 1, model.input_shape).astype(np.float32)


def indices(shape, count, seed=2):
    """Every index of a small output, else `count` random ones plus the corners (where
    'same' padding sits)."""
    total = int(np.prod(shape))
    if total <= count:
        return [tuple(int(i) for i in np.unravel_index(k, shape)) for k in range(total)]
    rng = np.random.default_rng(seed)
    picked = {tuple(int(i) for i in np.unravel_index(k, shape)) for k in rng.choice(total, count, replace=False)}
    picked.add(tuple(0 for _ in shape))
    picked.add(tuple(d - 1 for d in shape))
    return sorted(picked)


def check_layer(model, x, name, count=40):
    acts = model.activations(x[None])
    out = acts[name][0]
    for index in indices(out.shape, count):
        t = trace(model, x, name, index)
        assert t.value == pytest.approx(float(out[index]), abs=0)
        assert abs(t.computed - t.value) <= 1e-5 * max(1.0, abs(t.value)), (name, index, t.computed, t.value)
        assert t.matches()
        assert t.explain_text().splitlines()[-1].endswith("(the same as the model)")


def conv_model():
    return randomise(Sequential([
        Input((11, 11, 2)),
        L.Conv2D(3, 3, padding="same", activation="relu", name="same"),
        L.Conv2D(4, 4, strides=2, padding="same", activation="tanh", name="stride2_same"),  # odd pixel at the end
        L.Conv2D(3, 3, strides=2, name="stride2_valid"),
        L.ZeroPadding2D(3, name="pad"),
        L.Conv2D(3, 3, dilation_rate=2, activation="elu", name="dilated"),
        L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", activation="relu", name="depthwise"),
        L.SeparableConv2D(4, 3, padding="same", depth_multiplier=2, name="separable"),
        L.Conv2DTranspose(3, 3, strides=2, padding="same", name="transpose_same"),
        L.Conv2DTranspose(2, 3, strides=2, activation="relu", name="transpose_valid"),
        L.Flatten(name="flatten"),
        L.Dense(7, activation="softmax", name="dense"),
    ]))


@pytest.mark.parametrize("name", ["same", "stride2_same", "stride2_valid", "pad", "dilated", "depthwise",
                                  "separable", "transpose_same", "transpose_valid", "flatten", "dense"])
def test_conv_family_values_equal_the_activations(name):
    model = conv_model()
    check_layer(model, image(model), name)


def test_conv_cell_parts_add_up():
    model = conv_model()
    x = image(model)
    t = trace(model, x, "stride2_same", (0, 0, 1))
    # 'same' with a 4x4 kernel, stride 2 on 11 pixels: 3 padding rows, 1 before and 2 after
    assert t.window_rows == (-1, 0, 1, 2) and t.window_cols == (-1, 0, 1, 2)
    assert t.padding[0].all() and t.padding[:, 0].all() and not t.padding[1:, 1:].any()
    assert np.all(t.patch[0] == 0)
    np.testing.assert_allclose(t.products, t.patch * t.kernel)
    np.testing.assert_allclose(t.channel_sums.sum(), t.total)
    assert t.pre_activation == pytest.approx(t.total + t.bias)
    assert t.computed == pytest.approx(np.tanh(t.pre_activation), abs=1e-6)
    kernel = model.get_layer("stride2_same").weight("kernel")[:, :, :, 1]
    np.testing.assert_array_equal(t.kernel, kernel)
    last = trace(model, x, "stride2_same", (5, 5, 0))  # the bottom-right cell: the odd pixel at the end
    assert last.window_rows == (9, 10, 11, 12) and last.padding[2:].all()


def test_depthwise_output_channel_reads_one_input_channel():
    model = conv_model()
    x = image(model)
    t = trace(model, x, "depthwise", (1, 2, 5))  # channel 5 = input channel 2, multiplier 1
    assert "input channel 2" in t.notes[0]
    acts = model.activations(x[None])
    patch = t.patch[:, :, 0]
    inside = acts["dilated"][0][0:3, 1:4, 2]
    np.testing.assert_allclose(patch, inside)


def graph_model():
    inp = Input((9, 9, 3))
    a = L.Conv2D(4, 3, padding="same", name="a")(inp)
    b = L.Conv2D(4, 1, name="b")(inp)
    merged = [L.Add(name="add")([a, b]), L.Subtract(name="subtract")([a, b]), L.Multiply(name="multiply")([a, b]),
              L.Average(name="average")([a, b]), L.Maximum(name="maximum")([a, b]),
              L.Minimum(name="minimum")([a, b])]
    cat = L.Concatenate(name="concatenate")(merged)
    mp = L.MaxPooling2D(3, strides=2, padding="same", name="max_same")(cat)
    ap = L.AveragePooling2D(3, strides=2, padding="same", name="avg_same")(cat)
    both = L.Add(name="add_pools")([mp, ap])
    valid = L.MaxPooling2D(2, name="max_valid")(both)
    avg_valid = L.AveragePooling2D(2, strides=1, name="avg_valid")(valid)
    g1 = L.GlobalMaxPooling2D(name="gmax")(avg_valid)
    g2 = L.GlobalAveragePooling2D(name="gavg")(both)
    joined = L.Concatenate(name="heads")([g1, g2])
    return randomise(Model(inp, L.Dense(5, activation="sigmoid", name="out")(joined)))


@pytest.mark.parametrize("name", ["a", "b", "add", "subtract", "multiply", "average", "maximum", "minimum",
                                  "concatenate", "max_same", "avg_same", "add_pools", "max_valid", "avg_valid",
                                  "gmax", "gavg", "heads", "out"])
def test_graph_merges_pools_dense_equal_the_activations(name):
    model = graph_model()
    check_layer(model, image(model), name)


def test_merge_shares_and_pool_choice():
    model = graph_model()
    x = image(model)
    acts = model.activations(x[None])
    t = trace(model, x, "add", (4, 5, 2))
    assert [term.label for term in t.terms] == ["a", "b"]
    assert [term.value for term in t.terms] == pytest.approx([acts["a"][0][4, 5, 2], acts["b"][0][4, 5, 2]])
    m = trace(model, x, "max_same", (4, 4, 7))  # the last window: 9 = 2*4 - 1 + 3 - 1, one padding row/col
    assert m.window_rows == (7, 8, 9) and m.padding[2].all()
    r, c = m.chosen
    assert acts["concatenate"][0][r, c, 7] == pytest.approx(m.value)
    avg = trace(model, x, "avg_same", (4, 4, 7))
    window = acts["concatenate"][0][7:9, 7:9, 7]
    assert avg.computed == pytest.approx(window.mean(), abs=1e-6)  # the padding is not counted
    d = trace(model, x, "out", 2)
    assert len(d.terms) == 10 and d.rest_count == 38  # 24 + 24 inputs: 10 listed, 38 summed
    assert d.total == pytest.approx(sum(term.product for term in d.terms) + d.rest)


def elementwise_model():
    return randomise(Sequential([
        Input((6, 6, 4)),
        L.Rescaling(0.5, offset=0.1, name="rescaling"),
        L.BatchNormalization(name="bn"),
        L.ReLU(max_value=0.8, negative_slope=0.1, threshold=0.05, name="relu"),
        L.LeakyReLU(name="leaky"),
        L.ELU(name="elu"),
        L.PReLU(shared_axes=[1, 2], name="prelu"),
        L.Activation("sigmoid", name="sigmoid"),
        L.LayerNormalization(name="layer_norm"),
        L.GroupNormalization(2, name="group_norm"),
        L.Dropout(0.5, name="dropout"),
        L.SpatialDropout2D(0.5, name="spatial_dropout"),
        L.GaussianNoise(0.3, name="noise"),
        L.RandomFlip(name="flip"),
        L.RandomTranslation(0.1, 0.1, name="translate"),
        L.RandomRotation(0.1, name="rotate"),
        L.RandomZoom(0.1, name="zoom"),
        L.RandomContrast(0.2, name="contrast"),
        L.Cropping2D(((1, 0), (0, 1)), name="crop"),
        L.UpSampling2D(2, name="up_nearest"),
        L.UpSampling2D((1, 2), interpolation="bilinear", name="up_bilinear"),
        L.Permute((2, 1, 3), name="permute"),
        L.Activation("softmax", name="softmax_act"),
        L.Softmax(axis=1, name="softmax"),
        L.Reshape((-1, 8), name="reshape"),
        L.Dense(3, name="dense_seq"),
        L.Flatten(name="flatten"),
    ]))


ELEMENTWISE = ["rescaling", "bn", "relu", "leaky", "elu", "prelu", "sigmoid", "layer_norm", "group_norm", "dropout",
               "spatial_dropout", "noise", "flip", "translate", "rotate", "zoom", "contrast", "crop", "up_nearest",
               "up_bilinear", "permute", "softmax_act", "softmax", "reshape", "dense_seq", "flatten"]


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_other_layers_equal_the_activations(name):
    model = elementwise_model()
    check_layer(model, image(model), name, count=25)


def test_every_layer_class_is_covered():
    from visualcnn.engine.layers import LAYER_CLASSES

    covered = {layer.class_name for m in (conv_model(), graph_model(), elementwise_model()) for layer in m.layers}
    assert covered == set(LAYER_CLASSES)


def test_receptive_field_at_depth_holds_every_pixel_it_depends_on():
    """Changing every input pixel outside the traced field leaves the value unchanged;
    the field is no larger than its stated size."""
    model = conv_model()
    x = image(model)
    rng = np.random.default_rng(5)
    for name, index in [("same", (5, 9, 1)), ("stride2_same", (5, 2, 1)), ("stride2_valid", (1, 0, 2)),
                        ("dilated", (2, 1, 1)), ("depthwise", (3, 0, 4)), ("separable", (0, 3, 2))]:
        t = trace(model, x, name, index)
        (r0, r1), (c0, c1) = t.field_rows, t.field_cols
        outside = np.ones(x.shape[:2], bool)
        outside[r0:r1 + 1, c0:c1 + 1] = False
        changed = x.copy()
        changed[outside] = rng.normal(0, 3, (int(outside.sum()), x.shape[2]))
        again = model.activations(changed[None])[name][0][index]
        assert again == pytest.approx(t.value, abs=1e-5), name
        assert r1 - r0 + 1 <= t.field_size[0] and c1 - c0 + 1 <= t.field_size[1]


def test_seed_cnn_receptive_field_by_hand():
    model = load_model_file(preset_dir() / "seed_cnn.json").model
    model.build()
    x = np.zeros((28, 28, 1), np.float32)
    # conv2d_1 cell (3, 4) reads pool cells rows 3..5, cols 4..6 = conv2d rows 6..11, cols 8..13
    # = input rows 6..13, cols 8..15 (8x8 pixels)
    t = trace(model, x, "conv2d_1", (3, 4, 0))
    assert (t.field_rows, t.field_cols) == ((6, 13), (8, 15))
    assert t.window_rows == (3, 4, 5) and t.window_cols == (4, 5, 6)
    first = trace(model, x, "conv2d", (0, 0, 0))
    assert (first.field_rows, first.field_cols) == ((0, 2), (0, 2))


def test_explain_text_reads_as_a_derivation():
    model = conv_model()
    t = trace(model, image(model), "same", (0, 0, 2))
    text = t.explain_text()
    assert text.startswith("same (Conv2D) at [0, 0, 2] = ")
    assert "sees input rows 0-1, columns 0-1" in text
    assert "(pad)" in text  # the corner window's padding zeros are marked
    assert f"+ bias {t.bias:.4g}" in text


def test_clear_errors():
    model = conv_model()
    x = image(model)
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        trace(model, x, "nope", (0, 0, 0))
    with pytest.raises(ValueError, match="outside Conv2D 'same'"):
        trace(model, x, "same", (11, 0, 0))
    with pytest.raises(ValueError, match="one example shaped"):
        trace(model, np.zeros((2, 11, 11, 2)), "same", (0, 0, 0))


# --- the backward side ----------------------------------------------------------------

def small_classifier():
    return randomise(Sequential([
        Input((7, 7, 1)),
        L.Conv2D(3, 3, padding="same", activation="relu", name="conv"),
        L.MaxPooling2D(2, name="pool"),  # after a relu conv: the engine's relu hand-off must not leak in
        L.Conv2D(2, 2, activation="tanh", name="conv2"),
        L.Flatten(name="flatten"),
        L.Dense(4, activation="softmax", name="out"),
    ]), seed=3)


@pytest.mark.parametrize("name", ["conv", "conv2", "out"])
def test_backward_shares_add_up_to_the_engines_gradients(name):
    from visualcnn.engine.explain import trace_backward

    model = small_classifier()
    x = image(model, seed=4)
    shape = model.activations(x[None])[name][0].shape
    for channel in range(shape[-1]):
        cells = [idx for idx in np.ndindex(*shape) if idx[-1] == channel]
        traces = [trace_backward(model, x, 2, name, idx) for idx in cells]
        kernel_sum = sum(t.kernel_share for t in traces)
        np.testing.assert_allclose(kernel_sum, traces[0].kernel_total, rtol=1e-4, atol=1e-6)
        assert sum(t.bias_share for t in traces) == pytest.approx(traces[0].bias_total, rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("name,index", [("conv", (2, 3, 1)), ("conv2", (0, 0, 1)), ("out", (3,))])
def test_backward_bias_gradient_matches_a_finite_difference(name, index):
    from visualcnn.engine.explain import trace_backward

    model = small_classifier()
    x = image(model, seed=4)
    t = trace_backward(model, x, 1, name, index)
    bias = model.get_layer(name).weight("bias")
    eps = 1e-2
    k = index[-1]
    saved = float(bias[k])
    bias[k] = saved + eps
    up = trace_backward(model, x, 1, name, index).loss
    bias[k] = saved - eps
    down = trace_backward(model, x, 1, name, index).loss
    bias[k] = saved
    assert (up - down) / (2 * eps) == pytest.approx(t.bias_total, rel=2e-2, abs=1e-4)
    assert "dL/dkernel" in t.explain_text() and "dL/dz" in t.explain_text()


def test_backward_of_a_layer_without_weights_gives_the_value_gradient():
    from visualcnn.engine.explain import trace_backward

    model = small_classifier()
    x = image(model, seed=4)
    pooled = trace_backward(model, x, 0, "pool", (1, 1, 0))
    assert pooled.kernel_share is None and np.isfinite(pooled.dvalue)
    with pytest.raises(ValueError, match="label must be a class from 0 to 3"):
        trace_backward(model, x, 7, "pool", (1, 1, 0))
