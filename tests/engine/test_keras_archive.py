""".keras files both ways (engine/export/keras_archive.py, keras_archive_read.py) and Keras 3's
.weights.h5 (keras_weights_h5.py).

Without Keras: our export read back by us is exact, the layout is the one Keras 3.15 writes
(group paths as saving_lib names them), hostile files are refused in one line. With Keras
(importorskip; run with KERAS_BACKEND=torch /tmp/venvC/bin/python -m pytest): Keras opens our
files and predicts as we do within 1e-5, and a file Keras wrote opens in VisualCNN alike.
"""

import io
import json
import os
import warnings
import zipfile

import numpy as np
import pytest

from visualcnn.engine import ConfigError, Input, Model, Sequential, layers as L, load_model, load_model_file
from visualcnn.engine.export import export
from visualcnn.engine.export.keras_archive import archive_bytes, layer_config
from visualcnn.engine.keras_weights_h5 import keras_layer_paths
from visualcnn.engine.model_io import compile_from_config
from visualcnn.engine.training_config import TrainingConfig

h5py = pytest.importorskip("h5py")


# --- models -------------------------------------------------------------------------------

def sequential_cnn():
    return Sequential([Input(shape=(28, 28, 1)), L.Conv2D(6, 3, activation="relu"), L.BatchNormalization(),
                       L.MaxPooling2D(), L.Dropout(0.3), L.Conv2D(8, 3, padding="same"), L.BatchNormalization(),
                       L.Activation("relu"), L.Flatten(), L.Dropout(0.5), L.Dense(10, activation="softmax")],
                      name="cnn")


def residual_net():
    inputs = Input(shape=(28, 28, 1))
    x = L.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    x = L.BatchNormalization()(x)
    x = L.ReLU()(x)
    y = L.Conv2D(8, 3, padding="same", activation="relu")(x)
    y = L.Conv2D(8, 3, padding="same", kernel_initializer="he_normal")(y)
    x = L.ReLU()(L.Add()([x, y]))
    short = L.Conv2D(12, 1, strides=2)(x)
    z = L.Conv2D(12, 3, strides=2, padding="same")(x)
    x = L.Add()([short, L.BatchNormalization()(z)])
    outputs = L.Dense(10, activation="softmax")(L.GlobalAveragePooling2D()(x))
    return Model(inputs, outputs, name="resnet_small")


def layer_zoo():
    """Nearly every layer class in one graph, small enough to run in a blink."""
    inputs = Input(shape=(16, 16, 1))
    x = L.Rescaling(scale=0.5, offset=0.1)(inputs)
    x = L.RandomFlip("horizontal")(x)
    x = L.RandomTranslation(0.1, 0.1)(x)
    x = L.RandomRotation(0.1)(x)
    x = L.RandomZoom(0.1)(x)
    x = L.RandomContrast(0.2)(x)
    x = L.GaussianNoise(0.1)(x)
    x = L.ZeroPadding2D(1)(x)
    x = L.Conv2D(4, 3, activation="elu", kernel_initializer={"class_name": "RandomNormal",
                                                           "config": {"mean": 0.0, "stddev": 0.2}})(x)
    a = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(x)
    b = L.SeparableConv2D(8, 3, padding="same", bias_initializer={"class_name": "Constant",
                                                                "config": {"value": 0.1}})(x)
    c = L.Conv2D(8, 1, activation="tanh")(x)
    merged = L.Concatenate()([L.Add()([a, b]), L.Subtract()([a, c]), L.Multiply()([b, c]),
                              L.Average()([a, b, c]), L.Maximum()([a, c]), L.Minimum()([b, c])])
    x = L.PReLU()(merged)
    x = L.LayerNormalization()(x)
    x = L.GroupNormalization(groups=4)(x)
    x = L.SpatialDropout2D(0.2)(x)
    x = L.Conv2DTranspose(4, 3, strides=2, padding="same")(x)
    x = L.LeakyReLU(0.2)(x)
    x = L.Cropping2D(((1, 2), (2, 1)))(x)
    x = L.AveragePooling2D(2)(x)
    x = L.UpSampling2D(2)(x)
    x = L.MaxPooling2D(3, strides=2, padding="same")(x)
    x = L.ELU(0.5)(x)
    x = L.ReLU(max_value=6.0)(x)
    p = L.Permute((2, 1, 3))(x)
    g = L.GlobalMaxPooling2D()(p)
    f = L.Dense(6)(L.Flatten()(x))
    x = L.Concatenate()([g, f])
    x = L.Reshape((2, -1))(x)
    x = L.Softmax()(x)
    x = L.Flatten()(x)
    outputs = L.Dense(10, activation="softmax")(L.Dropout(0.1)(x))
    return Model(inputs, outputs, name="zoo")


def file_ordered_net():
    """A graph whose layers are listed in another order than keras model.layers (as a file or
    the builder may hold them): Keras numbers the weight groups in its own order."""
    from visualcnn.engine import model_from_graph

    layers = [L.Conv2D(4, 3, padding="same", name="a"), L.Conv2D(6, 1, name="b"),
              L.Conv2D(6, 3, padding="same", name="c"), L.Add(name="join"), L.Flatten(name="flat"),
              L.Dense(10, activation="softmax", name="out")]
    inbound = [(-1,), (-1,), (0,), (2, 1), (3,), (4,)]
    return model_from_graph("branches", (8, 8, 1), layers, inbound)


MODELS = {"sequential_cnn": sequential_cnn, "residual_net": residual_net, "layer_zoo": layer_zoo,
          "file_ordered_net": file_ordered_net}


def randomised(model, seed=0):
    """Built, with weights far from their initial values (BN statistics too), so a weight
    landing in the wrong place shows in the predictions."""
    model.build(seed=seed)
    rng = np.random.default_rng(seed)
    arrays = []
    for layer in model.layers:
        for spec in layer.weight_specs:
            if spec.name == "moving_variance":
                arrays.append(rng.uniform(0.5, 1.5, spec.shape).astype(np.float32))
            else:
                arrays.append((rng.standard_normal(spec.shape) * 0.3).astype(np.float32))
    model.set_weights(arrays)
    return model


def images(model, n=16, seed=1):
    return np.random.default_rng(seed).random((n, *model.input_shape), dtype=np.float32)


# --- ours -> .keras -> ours ------------------------------------------------------------------

@pytest.mark.parametrize("name", MODELS)
def test_round_trip_through_keras_file_is_exact(tmp_path, name):
    model = randomised(MODELS[name]())
    export(model, tmp_path / "m.keras", "keras")
    loaded = load_model_file(tmp_path / "m.keras").model
    assert type(loaded) is type(model)
    assert [layer.name for layer in loaded.layers] == [model.layers[i].name for i in _keras_order(model)]
    by_name = {layer.name: layer for layer in loaded.layers}
    for layer in model.layers:
        twin = by_name[layer.name]
        assert twin.class_name == layer.class_name
        assert layer_config(twin) == layer_config(layer)  # equal up to Keras's spelling (strides None = pool size)
        for ours, theirs in zip(layer.weights, twin.weights):
            np.testing.assert_array_equal(ours, theirs)
    x = images(model)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_model_save_keras_and_load_model_keep_weights_and_recipe(tmp_path):
    model = randomised(sequential_cnn())
    compile_from_config(model, TrainingConfig(optimizer="sgd", learning_rate=0.05, momentum=0.9, nesterov=True))
    model.save(tmp_path / "cnn.keras")
    with zipfile.ZipFile(tmp_path / "cnn.keras") as zf:
        assert sorted(zf.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]
        config = json.loads(zf.read("config.json"))
    optimizer = config["compile_config"]["optimizer"]
    assert optimizer["class_name"] == "SGD"
    assert optimizer["config"]["momentum"] == 0.9 and optimizer["config"]["nesterov"] is True
    again = load_model(tmp_path / "cnn.keras")
    assert again.optimizer.name == "sgd" and again.optimizer.momentum == pytest.approx(0.9)
    assert load_model_file(tmp_path / "cnn.keras").training.learning_rate == 0.05
    x = images(model)
    np.testing.assert_array_equal(again.predict(x), model.predict(x))


def test_an_unbuilt_model_is_exported_with_fresh_weights(tmp_path):
    model = residual_net()
    assert not model.built
    export(model, tmp_path / "fresh.keras", "keras")
    with zipfile.ZipFile(tmp_path / "fresh.keras") as zf:
        config = json.loads(zf.read("config.json"))
        weights = h5py.File(io.BytesIO(zf.read("model.weights.h5")), "r")
        assert weights["layers/conv2d/vars/0"].shape == (3, 3, 1, 8)
    assert "compile_config" not in config  # nothing was trained: no recipe goes along
    loaded = load_model_file(tmp_path / "fresh.keras").model
    np.testing.assert_array_equal(loaded.predict(images(model)), model.predict(images(model)))


def test_cosine_recipe_becomes_keras_cosine_decay_and_back():
    model = randomised(sequential_cnn())
    recipe = TrainingConfig(learning_rate=0.002, batch_size=100, epochs=2, validation_split=0.1, schedule="cosine")
    with zipfile.ZipFile(io.BytesIO(archive_bytes(model, recipe))) as zf:
        config = json.loads(zf.read("config.json"))
        optimizer_vars = h5py.File(io.BytesIO(zf.read("model.weights.h5")), "r")["optimizer/vars"]
        count = len(optimizer_vars)
    rate = config["compile_config"]["optimizer"]["config"]["learning_rate"]
    assert rate["class_name"] == "CosineDecay"
    assert rate["config"]["decay_steps"] == 540 * 2  # int(60,000 * 0.9) / 100 per epoch
    trainable = len(model.trainable_weights)
    assert count == 1 + 2 * trainable  # iterations; no learning_rate variable under a schedule; m and v


# --- the layout Keras 3 writes ---------------------------------------------------------------

def test_weight_paths_are_numbered_per_class_in_keras_layer_order():
    model = randomised(residual_net())
    paths = [path for path, _ in keras_layer_paths(model)]
    assert paths[:3] == ["layers/conv2d", "layers/batch_normalization", "layers/re_lu"]
    assert "layers/conv2d_4" in paths and "layers/add_1" in paths and len(set(paths)) == len(paths)
    f = h5py.File(io.BytesIO(zipfile.ZipFile(io.BytesIO(archive_bytes(model, None))).read("model.weights.h5")), "r")
    assert dict(f["vars"].attrs) == {"name": "resnet_small"}
    assert dict(f["layers/input_layer/vars"].attrs) == {"name": model.input_name}  # a Functional model's InputLayer
    assert f["layers/conv2d/vars"].attrs["name"] == "conv2d" and list(f["layers/conv2d/vars"]) == ["0"]
    assert [f[f"layers/batch_normalization/vars/{k}"].shape for k in "0123"] == [(8,)] * 4
    assert len(f["layers/add/vars"]) == 0  # a layer without weights still has its group


def test_weight_paths_follow_keras_order_not_the_file_order():
    model = randomised(file_ordered_net())
    assert [layer.name for layer in model.layers][:3] == ["a", "b", "c"]
    # keras model.layers: a (depth 3), then c before b (both depth 2; the walk from the output meets c first)
    assert {layer.name: path for path, layer in keras_layer_paths(model)} == {
        "a": "layers/conv2d", "c": "layers/conv2d_1", "b": "layers/conv2d_2", "join": "layers/add",
        "flat": "layers/flatten", "out": "layers/dense"}


def test_sequential_has_no_input_layer_group_and_layer_config_is_keras_form():
    model = randomised(sequential_cnn())
    f = h5py.File(io.BytesIO(zipfile.ZipFile(io.BytesIO(archive_bytes(model, None))).read("model.weights.h5")), "r")
    assert sorted(f["layers"]) == ["activation", "batch_normalization", "batch_normalization_1", "conv2d",
                                   "conv2d_1", "dense", "dropout", "dropout_1", "flatten", "max_pooling2d"]
    config = layer_config(model.layers[0])
    assert config["kernel_initializer"] == {"module": "keras.initializers", "class_name": "GlorotUniform",
                                            "config": {"seed": None}, "registered_name": None}
    assert config["data_format"] == "channels_last" and config["dtype"]["class_name"] == "DTypePolicy"
    assert layer_config(model.layers[2])["strides"] == [2, 2]


def test_save_weights_and_load_weights_round_trip(tmp_path):
    model = randomised(layer_zoo(), seed=3)
    model.save_weights(tmp_path / "zoo.weights.h5")
    other = randomised(layer_zoo(), seed=4)
    other.load_weights(tmp_path / "zoo.weights.h5")
    for ours, theirs in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    with pytest.raises(ValueError, match=r"must end in \.weights\.h5"):
        model.save_weights(tmp_path / "zoo.h5")


def test_load_weights_of_another_model_changes_nothing(tmp_path):
    randomised(sequential_cnn()).save_weights(tmp_path / "cnn.weights.h5")
    model = randomised(residual_net())
    before = model.get_weights()
    with pytest.raises(ConfigError, match=r"cnn\.weights\.h5: weights: layer '.*' \(.*\) has \d+ weight arrays"):
        model.load_weights(tmp_path / "cnn.weights.h5")
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_names_keras_refuses_are_problems_and_nothing_is_written(tmp_path):
    from visualcnn.engine.export import ExportError, problems

    model = sequential_cnn()
    model.layers[0].name = "block1/conv"
    assert problems(model, "keras") == ["layer 'block1/conv' (Conv2D): Keras layer names cannot contain '/'; "
                                        "rename the layer"]
    with pytest.raises(ExportError, match="block1/conv"):
        export(model, tmp_path / "m.keras", "keras")
    assert not (tmp_path / "m.keras").exists()


# --- hostile files ---------------------------------------------------------------------------

def keras_file(tmp_path, members: dict, name="bad.keras"):
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as zf:
        for member, data in members.items():
            zf.writestr(member, data)
    return path


def good_members():
    model = randomised(sequential_cnn())
    with zipfile.ZipFile(io.BytesIO(archive_bytes(model, None))) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def refused(path) -> str:
    with pytest.raises(ConfigError) as info:
        load_model_file(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(path.name + ": ")
    return message


def test_truncated_zip_is_refused(tmp_path):
    whole = archive_bytes(randomised(sequential_cnn()), None)
    for cut in (len(whole) // 2, len(whole) - 30, 10):
        path = tmp_path / "cut.keras"
        path.write_bytes(whole[:cut])
        assert "damaged or truncated" in refused(path)


def test_not_a_zip_is_refused(tmp_path):
    path = tmp_path / "text.keras"
    path.write_text("hello, not a model")
    assert "not a zip archive" in refused(path)


def test_missing_members_are_named(tmp_path):
    members = good_members()
    assert "has no config.json" in refused(keras_file(tmp_path, {k: v for k, v in members.items()
                                                                 if k != "config.json"}))
    assert "has no model.weights.h5" in refused(keras_file(tmp_path, {k: v for k, v in members.items()
                                                                      if k != "model.weights.h5"}))


def test_weights_with_wrong_shapes_are_named(tmp_path):
    members = good_members()
    config = json.loads(members["config.json"])
    config["config"]["layers"][1]["config"]["filters"] = 7  # the file's kernel has 6
    members["config.json"] = json.dumps(config)
    message = refused(keras_file(tmp_path, members))
    assert "conv2d/kernel" in message and "(3, 3, 1, 6) does not match the layer's (3, 3, 1, 7)" in message


def test_unknown_layer_class_is_named_as_for_keras_json(tmp_path):
    members = good_members()
    config = json.loads(members["config.json"])
    config["config"]["layers"][3]["class_name"] = "LSTM"
    members["config.json"] = json.dumps(config)
    assert "unknown layer type 'LSTM'" in refused(keras_file(tmp_path, members))


def test_zip_bomb_and_huge_members_are_refused_before_inflating(tmp_path):
    members = good_members()
    path = tmp_path / "bomb.keras"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("config.json", members["config.json"])
        zf.writestr("metadata.json", members["metadata.json"])
        zf.writestr("model.weights.h5", b"\0" * (64 * 1024 * 1024))  # 64 MB of zeros deflate ~1000-fold
    assert "zip bomb" in refused(path)
    big = tmp_path / "big.keras"
    with zipfile.ZipFile(big, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("config.json", b" " * (51 * 1024 * 1024))
    assert "config.json inflates" in refused(big)


def test_damaged_weights_file_is_refused(tmp_path):
    members = good_members()
    members["model.weights.h5"] = members["model.weights.h5"][:2000]
    assert "not a readable HDF5 file" in refused(keras_file(tmp_path, members))


# --- with real Keras -------------------------------------------------------------------------

@pytest.fixture
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


def keras_predict(keras, path, x):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # e.g. "Skipping variable loading for optimizer"
        model = keras.saving.load_model(path)
    return model, np.asarray(model.predict(x, verbose=0))


@pytest.mark.parametrize("name", MODELS)
def test_keras_loads_our_export_and_predicts_as_we_do(tmp_path, keras, name):
    model = randomised(MODELS[name]())
    compile_from_config(model, TrainingConfig())
    x = images(model)
    model.fit(x, np.arange(len(x)) % 10, batch_size=8, epochs=1, verbose=0)  # trained: optimizer state too
    export(model, tmp_path / "m.keras", "keras")
    theirs, predicted = keras_predict(keras, tmp_path / "m.keras", x)
    assert np.abs(predicted - model.predict(x)).max() <= 1e-5
    assert [layer.name for layer in theirs.layers if layer.__class__.__name__ != "InputLayer"] == \
        [model.layers[i].name for i in _keras_order(model)]
    assert int(theirs.optimizer.iterations.numpy()) == model.optimizer.iterations == 2
    # Keras reads every argument we wrote as the value we meant (its get_config gives it back),
    # and the loaded layer has no setting we did not write but Keras's defaults.
    for layer in model.layers:
        ours = layer_config(layer)
        fresh = keras.layers.deserialize({"class_name": layer.class_name, "config": ours,
                                          "module": "keras.layers"}).get_config()
        assert set(theirs.get_layer(layer.name).get_config()) == set(fresh)
        for key, value in ours.items():
            if key != "dtype":
                assert _plain(fresh[key]) == _plain(value), (layer.name, key)


def _keras_order(model):
    from visualcnn.engine.summary import keras_order

    return [i for i in keras_order(model.inbound) if i >= 0]


def _plain(value):
    """JSON form (tuples as lists) without Keras's optional initializer keys."""
    value = json.loads(json.dumps(value))
    if isinstance(value, dict) and value.get("module") == "keras.initializers":
        value = {**value, "config": {k: v for k, v in value["config"].items() if k not in ("input_axes", "output_axes")}}
    return value


def test_our_weights_file_loads_in_keras(tmp_path, keras):
    model = randomised(residual_net())
    model.save_weights(tmp_path / "r.weights.h5")
    export(model, tmp_path / "r.keras", "keras")
    theirs = keras.saving.load_model(tmp_path / "r.keras")
    twin = keras.models.clone_model(theirs)
    twin.load_weights(tmp_path / "r.weights.h5")
    x = images(model)
    assert np.abs(np.asarray(twin.predict(x, verbose=0)) - model.predict(x)).max() <= 1e-5


def test_a_file_keras_wrote_opens_with_identical_predictions(tmp_path, keras):
    kl = keras.layers
    inputs = keras.Input((28, 28, 1))
    x = kl.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = kl.BatchNormalization()(x)
    y = kl.SeparableConv2D(8, 3, padding="same")(x)
    y = kl.DepthwiseConv2D(3, padding="same")(y)
    x = kl.Add()([x, y])
    x = kl.PReLU()(x)
    x = kl.Conv2D(8, 3, strides=2)(x)
    x = kl.Conv2D(8, 3)(x)
    x = kl.MaxPooling2D()(x)
    x = kl.Flatten()(kl.Dropout(0.2)(x))
    outputs = kl.Dense(10, activation="softmax")(x)
    theirs = keras.Model(inputs, outputs)
    rng = np.random.default_rng(2)
    theirs.set_weights([rng.uniform(0.5, 1.5, w.shape) if "variance" in w.path else rng.standard_normal(w.shape) * 0.3
                        for w in theirs.weights])
    theirs.compile(optimizer=keras.optimizers.Adam(0.003), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    xs = np.random.default_rng(1).random((32, 28, 28, 1), dtype=np.float32)
    theirs.fit(xs, np.arange(32) % 10, batch_size=16, epochs=1, verbose=0)
    theirs.save(tmp_path / "keras_made.keras")
    model_file = load_model_file(tmp_path / "keras_made.keras")
    assert model_file.training.optimizer == "adam" and model_file.training.learning_rate == 0.003
    ours = load_model(tmp_path / "keras_made.keras")
    assert np.abs(ours.predict(xs) - np.asarray(theirs.predict(xs, verbose=0))).max() <= 1e-5
    theirs.save_weights(tmp_path / "keras_made.weights.h5")
    ours.build(seed=9)
    ours.load_weights(tmp_path / "keras_made.weights.h5")
    assert np.abs(ours.predict(xs) - np.asarray(theirs.predict(xs, verbose=0))).max() <= 1e-5



@pytest.mark.parametrize("recipe", [TrainingConfig(), TrainingConfig(optimizer="sgd", learning_rate=0.05, momentum=0.9),
                                    TrainingConfig(optimizer="rmsprop")], ids=["adam", "sgd_momentum", "rmsprop"])
def test_training_goes_on_in_keras_from_our_optimizer_state(tmp_path, keras, recipe):
    model = Sequential([Input(shape=(8, 8, 1)), L.Conv2D(3, 3, trainable=False), L.BatchNormalization(), L.Flatten(),
                        L.Dense(4, activation="softmax")])
    model.build(seed=0)
    compile_from_config(model, recipe)
    x = images(model)
    model.fit(x, np.arange(16) % 4, batch_size=8, epochs=1, verbose=0)
    export(model, tmp_path / "m.keras", "keras", recipe)
    theirs, _ = keras_predict(keras, tmp_path / "m.keras", x)
    # one more step on each side: equal weights only if the moments, the step count and the
    # learning rate all came across (a fresh Adam's first step differs by far more)
    model.train_on_batch(x[:8], np.arange(8) % 4)
    theirs.train_on_batch(x[:8], np.arange(8) % 4)
    for ours, other in zip(model.get_weights(), theirs.get_weights()):
        assert np.abs(ours - np.asarray(other)).max() <= 1e-6
