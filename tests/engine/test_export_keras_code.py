"""The keras-code export: a readable Keras 3 script (+ its .weights.h5) for any model.

Without Keras (CI): the script compiles, is the same bytes for the same model, says what it
cannot express, and its MNIST loader reads the bundled IDX files exactly as the engine does.
With Keras installed (run: KERAS_BACKEND=torch python -m pytest ...): the script's
build_model() gives every preset and a graph of every layer class with our layer names,
output shapes, parameter counts and arguments; with the weights, predictions within 1e-5;
and the script itself trains, tests and saves in a subprocess on a few images.
"""

import gzip
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from visualcnn.engine import Input, Model, Sequential, layers, load_model_file, read_model_file
from visualcnn.engine.datasets import load_mnist
from visualcnn.engine.export import ExportError, export, problems
from visualcnn.engine.export import keras_code, script_parts
from visualcnn.engine.layers import LAYER_CLASSES
from visualcnn.engine.recipe import prepare_labels, scale_images
from visualcnn.engine.training import split_index, steps_per_epoch
from visualcnn.engine.training_config import TrainingConfig
from visualcnn.resources import preset_dir

PRESETS = sorted(preset_dir().glob("*.json"))


def every_layer_model():
    """One Functional graph holding each of our layer classes, most with non-default arguments."""
    L = layers
    inp = Input(shape=(12, 12, 2), name="pixels")
    x = L.RandomFlip(mode="horizontal", seed=1, name="flip")(inp)
    x = L.RandomTranslation(0.1, 0.2, fill_mode="nearest", seed=2)(x)
    x = L.RandomRotation((-0.05, 0.1), fill_mode="constant", fill_value=0.5, interpolation="nearest")(x)
    x = L.RandomZoom(0.1, width_factor=(-0.1, 0.2), fill_mode="wrap")(x)
    x = L.RandomContrast(0.2, value_range=(0, 1), seed=5)(x)
    x = L.Rescaling(2.0, offset=-1.0)(x)
    x = L.GaussianNoise(0.1, seed=3)(x)
    c = L.Conv2D(8, 3, padding="same", activation="relu", kernel_initializer="he_normal",
                 bias_initializer={"class_name": "Constant", "config": {"value": 0.1}}, name="conv")(x)
    d = L.DepthwiseConv2D((3, 3), depth_multiplier=2, padding="same", dilation_rate=2, name="1st depthwise")(c)
    s = L.SeparableConv2D(8, (3, 1), padding="same", use_bias=False, name="class")(d)
    t = L.Conv2DTranspose(8, 3, strides=2, padding="same", output_padding=1)(s)
    m = L.MaxPooling2D(pool_size=3, strides=2, padding="same")(t)
    a = L.AveragePooling2D(2, strides=1, padding="same")(m)
    bn = L.BatchNormalization(momentum=0.9, epsilon=1e-5, center=False)(a)
    ln = L.LayerNormalization(epsilon=1e-4)(bn)
    gn = L.GroupNormalization(groups=4, epsilon=1e-5)(ln)
    act = L.Activation("tanh")(gn)
    r = L.ReLU(max_value=6.0, negative_slope=0.1, threshold=0.05)(act)
    lr = L.LeakyReLU(negative_slope=0.2)(r)
    p = L.PReLU(shared_axes=[1, 2], alpha_initializer={"class_name": "Constant", "config": {"value": 0.25}})(lr)
    e = L.ELU(alpha=0.5, name="inputs")(p)  # a name build_model() uses itself
    drop = L.Dropout(0.3, seed=4)(e)
    sd = L.SpatialDropout2D(0.2, seed=6)(drop)
    add = L.Add()([sd, c])
    sub = L.Subtract()([add, c])
    mul = L.Multiply()([sub, sd])
    avg = L.Average()([mul, add, c])
    mx = L.Maximum()([avg, sub])
    mn = L.Minimum()([mx, mul])
    cat = L.Concatenate(axis=-1)([mn, c])
    zp = L.ZeroPadding2D(((1, 2), (0, 1)))(cat)
    cr = L.Cropping2D(((2, 1), (1, 0)))(zp)
    up = L.UpSampling2D(size=(1, 2), interpolation="bilinear")(cr)
    pm = L.Permute((2, 1, 3))(up)
    rs = L.Reshape((12, 24, 16))(pm)
    sm = L.Softmax(axis=-1)(rs)
    gap = L.GlobalAveragePooling2D(keepdims=True)(sm)
    gmp = L.GlobalMaxPooling2D()(rs)
    fl = L.Flatten()(gap)
    cat2 = L.Concatenate()([fl, gmp])
    hidden = L.Dense(16, activation="gelu", trainable=False)(cat2)
    out = L.Dense(10, activation="softmax",
                  kernel_initializer={"class_name": "RandomNormal", "config": {"stddev": 0.1, "seed": 7}})(hidden)
    return Model(inp, out, name="every_layer")


def sequential_with_a_merge():
    """Our Sequential may hold a merge layer of one input; Keras's Sequential cannot call it."""
    return Sequential([Input(shape=(6, 6, 1)), layers.Conv2D(3, 3), layers.Concatenate(), layers.Flatten(),
                       layers.Dense(4, activation="softmax")], name="stack_with_merge")


def _models():
    cases = [(path.stem, lambda path=path: load_model_file(path).model) for path in PRESETS]
    return cases + [("every_layer", every_layer_model), ("stack_with_merge", sequential_with_a_merge)]


MODELS = _models()


def _random_weights(model, seed=0):
    """Build and give every weight random values (variances positive), so a wrong layout shows."""
    model.build(seed=seed)
    rng = np.random.default_rng(seed)
    arrays = []
    for layer in model.layers:
        for spec, value in zip(layer.weight_specs, layer.weights):
            w = rng.normal(0.0, 0.3, size=value.shape).astype(np.float32)
            arrays.append(np.abs(w) + 0.5 if spec.name == "moving_variance" else w)
    model.set_weights(arrays)
    return model


# --- without Keras ----------------------------------------------------------------------------

def test_the_graph_holds_every_layer_class():
    assert {layer.class_name for layer in every_layer_model().layers} == set(LAYER_CLASSES)


@pytest.mark.parametrize("name,make", MODELS, ids=[m[0] for m in MODELS])
def test_script_compiles_and_is_the_same_bytes_every_time(tmp_path, name, make):
    model = make()
    assert problems(model, "keras-code") == []
    export(model, tmp_path / "a.py", "keras-code")
    export(make(), tmp_path / "b.py", "keras-code")
    text = (tmp_path / "a.py").read_text()
    compile(text, "a.py", "exec")
    assert text == (tmp_path / "b.py").read_text().replace("b.py", "a.py")
    assert not (tmp_path / "a.weights.h5").exists()  # not built: no weights, and the script says so
    assert "WEIGHTS_FILE = None" in text
    for layer in model.layers:
        assert f'name={json.dumps(layer.name)})' in text


def test_a_built_model_gets_its_weights_beside_the_script_same_bytes_each_time(tmp_path):
    model = load_model_file(preset_dir() / "seed_cnn.json").model
    model.build(seed=3)
    export(model, tmp_path / "seed.py", "keras-code")
    first = (tmp_path / "seed.weights.h5").read_bytes()
    export(model, tmp_path / "seed.py", "keras-code")
    assert (tmp_path / "seed.weights.h5").read_bytes() == first
    text = (tmp_path / "seed.py").read_text()
    assert 'WEIGHTS_FILE = Path(__file__).resolve().parent / "seed.weights.h5"' in text
    assert "python seed.py --no-train" in text
    from visualcnn.engine.keras_weights_h5 import read_weights_h5

    for ours, stored in zip(model.get_weights(), read_weights_h5(first, model)):
        np.testing.assert_array_equal(ours, stored)


def test_layer_lines_hold_every_non_default_argument():
    text = keras_code.script(every_layer_model(), TrainingConfig())
    assert ('layers.Conv2D(8, kernel_size=(3, 3), padding="same", activation="relu", kernel_initializer="he_normal", '
            'bias_initializer=keras.initializers.Constant(value=0.1), name="conv")(gaussian_noise)') in text
    assert 'layers.ZeroPadding2D(padding=((1, 2), (0, 1)), name="zero_padding2d")(concatenate)' in text
    assert 'layers.Dense(16, activation="gelu", trainable=False, name="dense")(concatenate_1)' in text
    assert 'keras.initializers.RandomNormal(mean=0.0, stddev=0.1, seed=7)' in text
    assert 'layers.Average(name="average")([multiply, add, conv])' in text
    # variables named after layers, made valid and distinct from the names build_model uses
    assert '_1st_depthwise = layers.DepthwiseConv2D(' in text and 'class_ = layers.SeparableConv2D(' in text
    assert 'inputs_1 = layers.ELU(alpha=0.5, name="inputs")(p_re_lu)' in text
    assert 'model = keras.Model(inputs, dense_1, name="every_layer")' in text


def test_the_recipe_is_in_the_script():
    training = TrainingConfig(optimizer="sgd", learning_rate=0.05, momentum=0.9, nesterov=True,
                              loss="categorical_crossentropy", batch_size=32, epochs=4, validation_split=0.1, seed=7,
                              schedule="cosine")
    model = load_model_file(preset_dir() / "lenet5.json").model
    text = keras_code.script(model, training, "lenet.py")
    assert "keras.optimizers.SGD(learning_rate=learning_rate, momentum=MOMENTUM, nesterov=NESTEROV)" in text
    assert "keras.optimizers.schedules.CosineDecay(LEARNING_RATE, decay_steps=max(1, total_steps))" in text
    assert "validation_split=VALIDATION_SPLIT" in text and "keras.utils.set_random_seed(args.seed)" in text
    namespace = {}
    exec(script_parts.recipe_source(training, model.input_shape), namespace)
    assert {k: namespace[k] for k in ("OPTIMIZER", "LEARNING_RATE", "MOMENTUM", "NESTEROV", "LOSS", "BATCH_SIZE",
                                       "EPOCHS", "VALIDATION_SPLIT", "SEED", "SCHEDULE", "ONE_HOT_LABELS")} == {
        "OPTIMIZER": "sgd", "LEARNING_RATE": 0.05, "MOMENTUM": 0.9, "NESTEROV": True,
        "LOSS": "categorical_crossentropy", "BATCH_SIZE": 32, "EPOCHS": 4, "VALIDATION_SPLIT": 0.1, "SEED": 7,
        "SCHEDULE": "cosine", "ONE_HOT_LABELS": True}
    assert namespace["INPUT_SHAPE"] == tuple(model.input_shape)
    data_dir = Path(namespace["DATA_DIR"])
    assert data_dir.is_absolute() and (data_dir / "t10k-images-idx3-ubyte.gz").exists()
    for optimizer, call in (("adam", "keras.optimizers.Adam(learning_rate=learning_rate)"),
                            ("rmsprop", "keras.optimizers.RMSprop(learning_rate=learning_rate)")):
        assert call in keras_code.script(model, TrainingConfig(optimizer=optimizer))


def _script_helpers(fallback="None"):
    source = ("import gzip, math, struct, sys\nfrom pathlib import Path\nimport numpy as np\n"
              + script_parts.recipe_source(TrainingConfig(), (28, 28, 1))  # NUM_CLASSES, as in every script
              + script_parts.mnist_loader_source(fallback, "the fallback") + script_parts.preprocess_source())
    namespace = {}
    exec(compile(source, "script_parts", "exec"), namespace)
    return namespace


def test_the_scripts_read_and_prepare_mnist_exactly_as_the_engine():
    helpers = _script_helpers()
    (x, y), (xt, yt) = helpers["load_mnist"](script_parts.default_data_dir())
    (ex, ey), (ext, eyt) = load_mnist()
    for theirs, ours in ((x, ex), (y, ey), (xt, ext), (yt, eyt)):
        np.testing.assert_array_equal(theirs, ours)
    for shape in ((28, 28, 1), (784,)):
        np.testing.assert_array_equal(helpers["prepare_images"](xt[:50], shape), scale_images(ext[:50], shape))
    for loss in ("sparse_categorical_crossentropy", "categorical_crossentropy", "mean_squared_error"):
        np.testing.assert_array_equal(helpers["prepare_labels"](yt, script_parts.one_hot_labels(loss)),
                                      prepare_labels(eyt, loss))
    for n, batch, split in ((60000, 64, 0.0), (60000, 64, 0.1), (1000, 32, 0.25), (7, 3, 0.5)):
        assert helpers["training_steps"](n, batch, 3, split) == 3 * steps_per_epoch(n, batch, split)
    (_, _), (xv, _) = helpers["split_validation"](np.arange(10), np.arange(10), 0.25)
    assert list(xv) == [7, 8, 9] == list(range(split_index(10, 0.25), 10))  # the LAST fraction validates


def test_the_loader_falls_back_then_exits_with_one_line(tmp_path, capsys):
    helpers = _script_helpers(fallback="(_ for _ in ()).throw(OSError('no network'))")
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip, not idx")
    with pytest.raises(SystemExit) as exit_info:
        helpers["load_mnist"](tmp_path)
    assert "no network" in str(exit_info.value) and "--data FOLDER" in str(exit_info.value)
    assert "downloading MNIST with the fallback" in capsys.readouterr().out


def test_names_keras_refuses_are_problems_and_nothing_is_written(tmp_path):
    model = load_model_file(preset_dir() / "seed_cnn.json").model
    model.layers[2].name = "stage1/conv"
    assert problems(model, "keras-code") == [
        "layer 'stage1/conv' (Conv2D): Keras refuses '/' in a layer name; rename it"]
    with pytest.raises(ExportError, match="stage1/conv"):
        export(model, tmp_path / "seed.py", "keras-code")
    assert list(tmp_path.iterdir()) == []


def test_weights_file_name_follows_the_script():
    assert keras_code.weights_path(Path("/x/seed.py")) == Path("/x/seed.weights.h5")
    assert keras_code.weights_path(Path("run_me")) == Path("run_me.weights.h5")


# --- with Keras -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip("keras")


def _load_script(path):
    """The exported script as a module (its main() does not run)."""
    spec = importlib.util.spec_from_file_location(f"exported_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _keras_json(value):
    return json.loads(json.dumps(value, default=list))


@pytest.mark.parametrize("name,make", MODELS, ids=[m[0] for m in MODELS])
def test_keras_builds_our_layers_shapes_params_and_arguments(keras, tmp_path, name, make):
    model = make()
    export(model, tmp_path / f"{name}.py", "keras-code")
    keras.backend.clear_session()
    built = _load_script(tmp_path / f"{name}.py").build_model()
    report = model.analyse()
    by_name = {layer.name: layer for layer in built.layers if type(layer).__name__ != "InputLayer"}
    assert sorted(by_name) == sorted(layer.name for layer in model.layers)
    sequential = type(model).__name__ == "Sequential" and name != "stack_with_merge"
    assert built.name == model.name and type(built).__name__ == ("Sequential" if sequential else "Functional")
    for row in report.rows:
        layer = by_name[row.layer.name]
        assert type(layer).__name__ == row.layer.class_name
        assert tuple(layer.output.shape) == tuple(row.output_shape), row.layer.name
        assert layer.count_params() == row.params, row.layer.name
        assert layer.trainable == row.layer.trainable
        config = layer.get_config()
        for arg in row.layer.ARGS:  # every argument, defaults included: ours are Keras's
            if arg.kind == "initializer":
                continue
            ours = _keras_json(row.layer.get_config()[arg.name])
            if ours is None and arg.name == "strides":  # pooling: Keras stores what None means
                ours = _keras_json(row.layer.config["pool_size"])
            keras_value = _keras_json(config[arg.name])
            if arg.kind == "axis_list":  # -1 and [-1] are one axis (Keras keeps a list once built)
                keras_value, ours = ([v] if isinstance(v, int) else v for v in (keras_value, ours))
            assert keras_value == ours, f"{row.layer.name}.{arg.name}"
    assert built.count_params() == report.total_params


PREDICTED = ("seed_cnn", "lenet5", "resnet_mnist", "mlp", "inception_mnist", "every_layer", "stack_with_merge")


@pytest.mark.parametrize("name,make", [m for m in MODELS if m[0] in PREDICTED],
                         ids=[m[0] for m in MODELS if m[0] in PREDICTED])
def test_keras_predicts_what_we_predict_with_the_exported_weights(keras, tmp_path, name, make):
    model = _random_weights(make(), seed=len(name))
    export(model, tmp_path / f"{name}.py", "keras-code")
    keras.backend.clear_session()
    built = _load_script(tmp_path / f"{name}.py").build_model(tmp_path / f"{name}.weights.h5")
    if model.input_shape in ((12, 12, 2), (6, 6, 1)):
        x = np.random.default_rng(1).random((16, *model.input_shape), dtype=np.float32)
    else:
        (_, _), (xt, _) = load_mnist()
        x = scale_images(xt[:64], model.input_shape)
    ours = model.predict(x, verbose=0)
    theirs = np.asarray(built.predict(x, verbose=0))
    np.testing.assert_allclose(theirs, ours, atol=1e-5, rtol=0)


def test_the_script_trains_tests_and_saves_in_a_subprocess(keras, tmp_path):
    model = load_model_file(preset_dir() / "seed_cnn.json").model
    model.build()
    training = TrainingConfig(batch_size=32, schedule="cosine", validation_split=0.25)
    export(model, tmp_path / "seed.py", "keras-code", training)
    env = dict(os.environ)
    run = subprocess.run([sys.executable, "seed.py", "--epochs", "1", "--limit", "96", "--save", "out.keras"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "test accuracy:" in run.stdout and "on 96 test images" in run.stdout
    assert "val_accuracy" in run.stdout  # the recipe's validation split reached fit()
    assert (tmp_path / "out.keras").stat().st_size > 0
    # --no-train in this process (one Keras start-up is enough): main() returns the accuracy it prints
    module = _load_script(tmp_path / "seed.py")
    keras.backend.clear_session()
    accuracy = module.main(["--no-train", "--limit", "64", "--data", script_parts.default_data_dir()])
    (_, _), (xt, yt) = load_mnist()
    ours = np.mean(np.argmax(model.predict(scale_images(xt[:64], (28, 28, 1)), verbose=0), axis=1) == yt[:64])
    assert accuracy == pytest.approx(ours, abs=1e-6)


def test_without_weights_no_train_is_refused_in_one_line(keras, tmp_path, capsys):
    export(load_model_file(preset_dir() / "mlp.json").model, tmp_path / "mlp.py", "keras-code")
    module = _load_script(tmp_path / "mlp.py")
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--no-train"])
    assert exit_info.value.code == 2
    assert "this export has no trained weights" in capsys.readouterr().err


KERAS_CASES = json.loads(gzip.decompress(
    (Path(__file__).parent / "keras_fixtures" / "functional_models.json.gz").read_bytes()))["cases"]


@pytest.mark.parametrize("case", KERAS_CASES[::4], ids=lambda c: json.loads(c["json"])["config"]["name"])
def test_models_made_in_keras_come_back_as_keras_made_them(keras, tmp_path, case):
    """Random Keras models (frozen layers, long names, every class, branches; recorded by
    keras_fixtures/make_functional_fixtures.py), read by us and written back as a script,
    give Keras's own layer names, classes, output shapes and parameter counts."""
    model = read_model_file(case["json"]).model
    export(model, tmp_path / "m.py", "keras-code")
    keras.backend.clear_session()
    built = _load_script(tmp_path / "m.py").build_model()
    rows = [{"name": layer.name, "class_name": type(layer).__name__, "output_shape": list(layer.output.shape),
             "params": layer.count_params(),
             "trainable_params": sum(int(np.prod(w.shape)) for w in layer.trainable_weights)}
            for layer in built.layers if type(layer).__name__ != "InputLayer"]
    assert sorted(rows, key=lambda r: r["name"]) == sorted(case["rows"], key=lambda r: r["name"])
