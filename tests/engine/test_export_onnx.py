"""ONNX export: the file onnxruntime runs gives our predictions (within 1e-5), for every
preset, every layer class in one graph and a table of layer settings; its interface
(input "input" (N, H, W, C) with a dynamic batch, output "output"); refusals naming the
layer; and an existing file replaced only by a complete one."""

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from visualcnn.engine import Input, Model, Sequential, layers as L, load_model_file  # noqa: E402
from visualcnn.engine.export import ExportError, export, problems  # noqa: E402
from visualcnn.engine.export import onnx_model  # noqa: E402
from visualcnn.engine.layers import LAYER_CLASSES  # noqa: E402
from visualcnn.resources import resource_dir  # noqa: E402

PRESETS = sorted((resource_dir() / "presets").glob("*.json"))
TOL = 1e-5


def randomise(model, seed=0):
    """Weights far from their initial values: BatchNormalization moving statistics,
    gammas, biases and PReLU slopes that are not 0 / 1, so a wrong axis or epsilon shows."""
    rng = np.random.default_rng(seed)
    weights = []
    for layer in model.layers:
        for spec in layer.weight_specs:
            if spec.name == "moving_variance":
                w = rng.uniform(0.5, 1.5, spec.shape)
            elif spec.name == "gamma":
                w = 1.0 + 0.2 * rng.standard_normal(spec.shape)
            elif spec.name == "alpha":
                w = rng.uniform(0.0, 0.4, spec.shape)
            elif spec.name in ("kernel", "depthwise_kernel", "pointwise_kernel"):
                fan_in = int(np.prod(spec.shape[:-1])) or 1
                w = rng.standard_normal(spec.shape) / np.sqrt(fan_in)
            else:  # bias, beta, moving_mean
                w = 0.2 * rng.standard_normal(spec.shape)
            weights.append(w.astype(np.float32))
    model.set_weights(weights)
    return model


def session(model):
    proto = onnx_model.to_onnx(model)
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])


def images(model, n, seed=1):
    return np.random.default_rng(seed).random((n, *model.input_shape), dtype=np.float32)


def assert_same_predictions(model, batch=7, seed=1):
    x = images(model, batch, seed)
    ours = model.predict(x)
    theirs = session(model).run(["output"], {"input": x})[0]
    assert theirs.shape == ours.shape
    np.testing.assert_allclose(theirs, ours, rtol=TOL, atol=TOL)


# --- presets ----------------------------------------------------------------------------

@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_every_preset_predicts_as_ours(preset):
    model = load_model_file(preset).model
    model.build(seed=3)
    randomise(model)
    x = images(model, 7)
    ours = model.predict(x)
    sess = session(model)
    for batch in (1, 7):  # the batch axis is dynamic
        theirs = sess.run(["output"], {"input": x[:batch]})[0]
        np.testing.assert_allclose(theirs, ours[:batch], rtol=TOL, atol=TOL)


# --- every layer class in one graph -----------------------------------------------------

def every_layer_graph():
    """One functional graph holding each of the 40 layer classes, with the settings that
    differ between NHWC and NCHW or between Keras and a naive translation: odd sizes with
    "same" padding and strides, dilation, depth multipliers, non-default axes, merges of
    a lower-rank input, Dense on an image, Flatten after a transposed layout."""
    inputs = Input(shape=(11, 9, 3))
    x = L.Rescaling(0.5, offset=-0.25)(inputs)
    x = L.RandomFlip()(x)
    x = L.RandomTranslation(0.1, 0.1)(x)
    x = L.RandomRotation(0.1)(x)
    x = L.RandomZoom(0.1)(x)
    x = L.RandomContrast(0.2)(x)
    x = L.GaussianNoise(0.1)(x)
    a = L.Conv2D(6, 3, strides=2, padding="same", activation="relu")(x)  # 6x5x6
    a = L.BatchNormalization()(a)
    b = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, dilation_rate=2, activation="elu")(x)  # 11x9x6
    b = L.MaxPooling2D(3, strides=2, padding="same")(b)  # 6x5x6
    c = L.SeparableConv2D(6, (3, 2), strides=2, padding="same", depth_multiplier=2, activation="tanh")(x)
    joined = L.Concatenate()([L.Add()([a, b]), L.Subtract()([a, c]), L.Multiply()([a, b, c]),
                              L.Average()([a, b, c]), L.Maximum()([a, c]), L.Minimum()([b, c])])  # 6x5x36
    y = L.LeakyReLU(0.1)(joined)
    y = L.PReLU(shared_axes=[1, 2])(y)
    y = L.ReLU(max_value=1.5, negative_slope=0.1, threshold=0.2)(y)
    y = L.LayerNormalization(axis=[1, 3])(y)
    y = L.GroupNormalization(groups=4)(y)
    y = L.SpatialDropout2D(0.2)(y)
    y = L.ZeroPadding2D(((1, 0), (2, 1)))(y)  # 7x8
    y = L.Cropping2D(((0, 1), (1, 0)))(y)  # 6x7
    y = L.UpSampling2D(2, interpolation="bilinear")(y)  # 12x14
    y = L.Conv2DTranspose(8, 3, strides=2, padding="same", activation="sigmoid")(y)  # 24x28x8
    y = L.AveragePooling2D(3, strides=2, padding="same")(y)  # 12x14x8
    y = L.ELU(0.7)(y)
    g_avg = L.GlobalAveragePooling2D()(y)  # 8
    g_max = L.GlobalMaxPooling2D(keepdims=True)(y)  # 1x1x8
    y = L.Add()([y, g_avg])  # a lower rank joins: (8,) as (1, 1, 8)
    y = L.Multiply()([y, g_max])
    y = L.Permute((2, 1, 3))(y)  # 14x12x8
    y = L.Reshape((14, 96))(y)
    y = L.Dense(5, activation="gelu")(y)  # Dense on the last axis of a rank-3 tensor
    y = L.Softmax(axis=1)(y)
    y = L.Activation("swish")(y)
    y = L.Flatten()(y)
    y = L.Dropout(0.5)(y)
    outputs = L.Dense(10, activation="softmax")(y)
    return Model(inputs, outputs, name="every_layer")


def test_the_every_layer_graph_uses_every_layer_class():
    used = {layer.class_name for layer in every_layer_graph().layers}
    assert used == set(LAYER_CLASSES)
    assert set(onnx_model.TRANSLATIONS) == set(LAYER_CLASSES)  # a new layer class needs a decision here


def test_every_layer_class_in_one_graph_predicts_as_ours():
    model = every_layer_graph()
    model.build(seed=5)
    randomise(model, seed=2)
    assert_same_predictions(model)


# --- layer settings, one small model each -------------------------------------------------

def chain(input_shape, *layers):
    model = Sequential([Input(shape=input_shape), *layers])
    model.build(seed=7)
    return randomise(model, seed=4)


SETTINGS = {
    "conv same odd stride": ((9, 8, 2), [L.Conv2D(4, 4, strides=3, padding="same")]),
    "conv valid dilated": ((9, 8, 2), [L.Conv2D(3, (3, 2), dilation_rate=(2, 3), use_bias=False)]),
    "conv same dilated": ((7, 6, 1), [L.Conv2D(3, 3, dilation_rate=2, padding="same", activation="selu")]),
    "depthwise strided": ((9, 9, 3), [L.DepthwiseConv2D(2, strides=2, padding="same", use_bias=False)]),
    "separable valid": ((8, 7, 2), [L.SeparableConv2D(5, 3, dilation_rate=2, activation="softplus")]),
    "transpose valid": ((5, 4, 2), [L.Conv2DTranspose(3, 3, strides=2)]),
    "transpose valid stride > kernel": ((5, 4, 2), [L.Conv2DTranspose(3, 2, strides=3)]),
    "transpose same odd kernel": ((5, 4, 2), [L.Conv2DTranspose(3, 3, strides=2, padding="same")]),
    "transpose same even kernel": ((5, 4, 2), [L.Conv2DTranspose(3, 4, strides=3, padding="same")]),
    "transpose output_padding": ((5, 4, 2), [L.Conv2DTranspose(3, 3, strides=2, padding="same",
                                                                output_padding=1)]),
    "transpose valid output_padding": ((5, 4, 2), [L.Conv2DTranspose(3, 3, strides=3, output_padding=(2, 1))]),
    "transpose dilated": ((5, 4, 2), [L.Conv2DTranspose(3, 3, dilation_rate=2, padding="same")]),
    "max pool valid odd": ((9, 7, 2), [L.MaxPooling2D(2)]),
    "max pool same": ((9, 7, 2), [L.MaxPooling2D(3, strides=2, padding="same")]),
    "avg pool same excludes padding": ((9, 7, 2), [L.AveragePooling2D(2, padding="same")]),
    "avg pool same overlapping": ((8, 7, 2), [L.AveragePooling2D(3, strides=1, padding="same")]),
    "global avg keepdims": ((5, 4, 3), [L.GlobalAveragePooling2D(keepdims=True)]),
    "global max": ((5, 4, 3), [L.GlobalMaxPooling2D()]),
    "upsampling nearest": ((4, 3, 2), [L.UpSampling2D((2, 3))]),
    "upsampling bilinear": ((4, 3, 2), [L.UpSampling2D(3, interpolation="bilinear")]),
    "upsampling bicubic": ((4, 5, 2), [L.UpSampling2D(2, interpolation="bicubic")]),
    "batchnorm axis 1": ((4, 3, 2), [L.BatchNormalization(axis=1, epsilon=0.1)]),
    "batchnorm no scale": ((4, 3, 2), [L.BatchNormalization(scale=False, center=False)]),
    "batchnorm after dense": ((6,), [L.Dense(4), L.BatchNormalization(epsilon=0.01)]),
    "layernorm default": ((4, 3, 5), [L.LayerNormalization(epsilon=0.1)]),
    "layernorm image": ((4, 3, 5), [L.LayerNormalization(axis=[1, 2, 3], scale=False)]),
    "layernorm height": ((4, 3, 5), [L.LayerNormalization(axis=1, center=False)]),
    "groupnorm instance": ((4, 3, 6), [L.GroupNormalization(groups=-1, epsilon=0.01)]),
    "groupnorm height axis": ((6, 3, 2), [L.GroupNormalization(groups=3, axis=1, center=False)]),
    "groupnorm plain": ((4, 3, 6), [L.GroupNormalization(groups=2, scale=False, center=False)]),
    "softmax channels": ((4, 3, 5), [L.Softmax()]),
    "softmax two axes": ((4, 3, 5), [L.Softmax(axis=[1, 2])]),
    "relu capped": ((4, 3, 2), [L.ReLU(max_value=0.5)]),
    "relu threshold": ((4, 3, 2), [L.ReLU(threshold=0.3)]),
    "relu slope": ((4, 3, 2), [L.ReLU(negative_slope=0.2)]),
    "prelu per value": ((4, 3, 2), [L.PReLU()]),
    "prelu per row": ((4, 3, 2), [L.PReLU(shared_axes=[2, 3])]),
    "reshape image": ((4, 6, 2), [L.Conv2D(4, 1), L.Reshape((8, 3, 4))]),
    "permute image": ((4, 6, 2), [L.Conv2D(3, 1), L.Permute((3, 1, 2)), L.Conv2D(2, 1)]),
    "concatenate height": ((4, 3, 2), [L.Conv2D(3, 1)]),  # completed in the test (a graph)
    "flatten after conv": ((5, 4, 1), [L.Conv2D(3, 2), L.Flatten(), L.Dense(4)]),
    "dense on image": ((5, 4, 3), [L.Dense(2, activation="softmax")]),
    "rescaling no offset": ((4, 3, 2), [L.Rescaling(1 / 255)]),
    "zero padding": ((4, 3, 2), [L.Conv2D(2, 1), L.ZeroPadding2D(((0, 2), (1, 3)))]),
    "cropping": ((6, 5, 2), [L.Conv2D(2, 1), L.Cropping2D(((2, 0), (1, 1)))]),
}


@pytest.mark.parametrize("case", list(SETTINGS))
def test_layer_settings_predict_as_ours(case):
    shape, layers = SETTINGS[case]
    if case == "concatenate height":
        inputs = Input(shape=shape)
        a = layers[0](inputs)
        b = L.Conv2D(3, 1)(inputs)
        joined = L.Concatenate(axis=1)([a, b])
        model = Model(inputs, L.Conv2D(2, (3, 1))(joined))
        model.build(seed=7)
        randomise(model, seed=4)
    else:
        model = chain(shape, *layers)
    assert_same_predictions(model)


ACTIVATIONS = ["linear", "relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "sigmoid", "hard_sigmoid",
               "tanh", "softmax", "log_softmax", "softplus", "softsign", "silu", "exponential"]


def test_the_activation_table_is_every_keras_activation():
    from visualcnn.engine.layers.arguments import ACTIVATIONS as KNOWN

    assert set(ACTIVATIONS) == set(KNOWN)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_every_activation_predicts_as_ours(name):
    # scaled so relu6, hard_sigmoid and softplus see their bends and flat parts
    model = chain((4, 3, 2), L.Conv2D(5, 1), L.Rescaling(4.0), L.Activation(name),
                  L.Conv2D(3, 1, activation=name))
    assert_same_predictions(model)


# --- the file's interface ---------------------------------------------------------------

def test_input_output_names_layout_and_dynamic_batch(tmp_path):
    model = load_model_file(resource_dir() / "presets" / "seed_cnn.json").model
    model.build(seed=0)
    path = export(model, tmp_path / "seed.onnx", "onnx")
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version == 17 and proto.ir_version <= 9  # onnxruntime >= 1.17 reads it
    (inp,), (out,) = proto.graph.input, proto.graph.output
    dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
    assert inp.name == "input" and dims(inp) == ["N", 28, 28, 1]
    assert out.name == "output" and dims(out) == ["N", 10]
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    # the student's layer names are the nodes' names, the weights named after them
    nodes = {n.name: n for n in proto.graph.node}
    assert {layer.name for layer in model.layers} <= set(nodes)
    conv = model.layers[0]
    assert nodes[conv.name].doc_string == f"Conv2D '{conv.name}': {conv.describe()}"
    assert f"{model.layers[0].name}/kernel" in {t.name for t in proto.graph.initializer}
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = images(model, 7)
    for batch in (1, 7):
        np.testing.assert_allclose(sess.run(None, {"input": x[:batch]})[0], model.predict(x[:batch]),
                                   rtol=TOL, atol=TOL)


def test_one_transpose_after_the_input_and_one_before_flatten():
    model = load_model_file(resource_dir() / "presets" / "lenet5.json").model
    model.build(seed=0)
    ops = [n.op_type for n in onnx_model.to_onnx(model).graph.node]
    assert ops.count("Transpose") == 2
    assert ops[0] == "Transpose" and ops.index("Flatten") == ops.index("Transpose", 1) + 1


def test_an_unbuilt_model_is_exported_with_fresh_weights_and_left_unbuilt(tmp_path):
    model = load_model_file(resource_dir() / "presets" / "lenet5.json").model
    assert not model.built
    export(model, tmp_path / "lenet.onnx", "onnx")
    assert not model.built
    proto = onnx.load(str(tmp_path / "lenet.onnx"))
    twin = load_model_file(resource_dir() / "presets" / "lenet5.json").model
    twin.build(seed=model.seed)
    stored = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    dense = twin.layers[-1]
    np.testing.assert_array_equal(stored[f"{dense.name}/kernel"], dense.weight("kernel"))
    sess = ort.InferenceSession(str(tmp_path / "lenet.onnx"), providers=["CPUExecutionProvider"])
    x = images(twin, 3)
    np.testing.assert_allclose(sess.run(None, {"input": x})[0], twin.predict(x), rtol=TOL, atol=TOL)


# --- refusals and atomic writes -------------------------------------------------------------

def test_a_layer_without_translation_is_refused_naming_it(tmp_path, monkeypatch):
    model = chain((4, 6, 2), L.Conv2D(3, 1), L.Permute((2, 1, 3), name="turn"))
    monkeypatch.delitem(onnx_model.TRANSLATIONS, "Permute")
    found = problems(model, "onnx")
    assert len(found) == 1 and found[0].startswith("layer 'turn' (Permute): ")
    assert "no translation" in found[0]
    with pytest.raises(ExportError, match=r"cannot export to onnx: layer 'turn' \(Permute\)"):
        export(model, tmp_path / "m.onnx", "onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_weights_beyond_protobufs_limit_are_refused_before_building():
    model = Sequential([Input(shape=(28, 28, 1)), L.Flatten(), L.Dense(700_000, name="huge")])
    found = problems(model, "onnx")
    assert len(found) == 1 and found[0].startswith("layer 'huge' (Dense): ") and "2 GiB" in found[0]
    assert not model.built


def test_a_model_with_an_error_and_an_empty_model_are_refused():
    assert problems(Sequential([Input(shape=(28, 28, 1))]), "onnx") == [
        "model 'sequential' has no layers; add at least one before exporting"]
    broken = Sequential([Input(shape=(4, 4, 1)), L.Conv2D(2, 3), L.Conv2D(2, 3)])
    (line,) = problems(broken, "onnx")
    assert line.startswith("the model has an error: ") and "does not fit" in line


def test_presets_have_no_problems():
    for preset in PRESETS:
        assert problems(load_model_file(preset).model, "onnx") == [], preset.stem


def _folder_listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_an_existing_file_is_only_replaced_by_a_complete_one(tmp_path, monkeypatch):
    target = tmp_path / "model.onnx"
    target.write_bytes(b"the previous export")
    model = chain((5, 4, 1), L.Conv2D(3, 2), L.Flatten(), L.Dense(4, name="scores"))

    def broken(*args):
        raise RuntimeError("failed half way through the graph")

    monkeypatch.setitem(onnx_model.TRANSLATIONS, "Dense", broken)
    with pytest.raises(RuntimeError, match="half way"):
        export(model, target, "onnx")
    assert target.read_bytes() == b"the previous export"
    assert _folder_listing(tmp_path) == ["model.onnx"]  # no temporary file left behind

    monkeypatch.undo()
    export(model, target, "onnx")
    assert _folder_listing(tmp_path) == ["model.onnx"]
    proto = onnx.load(str(target))
    onnx.checker.check_model(proto, full_check=True)
    sess = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    x = images(model, 2)
    np.testing.assert_allclose(sess.run(None, {"input": x})[0], model.predict(x), rtol=TOL, atol=TOL)
