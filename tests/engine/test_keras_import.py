"""Model files written by REAL Keras open in VisualCNN with Keras's predictions.

The files in keras_files/ were made by keras_files/make_keras_files.py with Keras 3 (torch
backend): .keras, legacy .h5 and .weights.h5 of four trained models, and Keras's own
predictions on test digits. No Keras is needed here (CI has none). Keras 2 (tf.keras) files
are written below with h5py in tf.keras's layout (hdf5_format.py: weights named
"conv2d/kernel:0", the config in Keras 2's form), since no Keras 2 runs here.
Damaged, hostile and unsupported files each end in one ConfigError line.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

from visualcnn.engine import load_model, load_model_file  # noqa: E402
from visualcnn.engine.datasets import load_mnist  # noqa: E402
from visualcnn.engine.layers import ConfigError  # noqa: E402
from visualcnn.engine.model_io import model_from_json  # noqa: E402

FILES = Path(__file__).parent / "keras_files"
PREDICTIONS = np.load(FILES / "predictions.npz")
MODEL_FILES = ["seed_cnn.keras", "lenet5.keras", "lenet5.h5", "residual.keras", "residual.h5",
               "inception.keras", "inception.h5"]
TOLERANCE = 1e-5


def stem(file_name: str) -> str:
    return file_name.split(".")[0]


def one_line_error(path, loader=load_model) -> str:
    with pytest.raises(ConfigError) as info:
        loader(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(Path(path).name + ": "), message
    return message


@pytest.fixture(scope="module")
def test_digits():
    _, (x, _) = load_mnist()
    return (x[:1000].astype(np.float32) / 255.0)[..., None]


# --- the committed real-Keras files ---------------------------------------------------------

def test_fixtures_are_present_and_small():
    total = sum(path.stat().st_size for path in FILES.iterdir() if path.is_file())
    assert total < 2_000_000
    for name in MODEL_FILES:
        assert (FILES / name).read_bytes()[:2] in (b"PK", b"\x89H"), name


@pytest.mark.parametrize("file_name", MODEL_FILES)
def test_predictions_equal_keras(file_name):
    model = load_model(FILES / file_name)
    expected = PREDICTIONS[stem(file_name)]
    got = model.predict(PREDICTIONS["x"])
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() < TOLERANCE
    # not a vacuous check: the outputs depend on the image
    assert np.abs(expected - expected.mean(axis=0)).max() > 0.1


@pytest.mark.parametrize("name", ["seed_cnn", "lenet5", "residual", "inception"])
def test_predictions_on_1000_test_digits_equal_keras(name, test_digits):
    model = load_model(FILES / f"{name}.keras")
    assert np.abs(model.predict(test_digits) - PREDICTIONS[f"{name}_1000"]).max() < TOLERANCE


def test_h5_and_keras_files_give_the_same_model():
    for name in ("lenet5", "residual", "inception"):
        from_h5, from_keras = load_model_file(FILES / f"{name}.h5"), load_model_file(FILES / f"{name}.keras")
        assert type(from_h5.model) is type(from_keras.model)
        assert [layer.name for layer in from_h5.model.layers] == [layer.name for layer in from_keras.model.layers]
        for a, b in zip(from_h5.model.get_weights(), from_keras.model.get_weights()):
            np.testing.assert_array_equal(a, b)
        assert from_h5.training == from_keras.training


def test_legacy_h5_recipe():
    training = load_model_file(FILES / "residual.h5").training
    assert (training.optimizer, training.loss) == ("adam", "sparse_categorical_crossentropy")
    assert training.learning_rate == pytest.approx(1e-2)  # make_keras_files trains it at 1e-2


def test_functional_structure_survives():
    model = load_model(FILES / "residual.h5")
    classes = [layer.class_name for layer in model.layers]
    assert "Add" in classes and "GlobalAveragePooling2D" in classes
    add = classes.index("Add")
    assert len(model.inbound[add]) == 2
    model = load_model(FILES / "inception.h5")
    concat = [layer.class_name for layer in model.layers].index("Concatenate")
    assert len(model.inbound[concat]) == 4


@pytest.mark.parametrize("name", ["residual", "inception"])
def test_weights_files_load_into_the_model(name):
    model = load_model(FILES / f"{name}.keras")
    model.set_weights([np.zeros_like(w) for w in model.get_weights()])
    model.load_weights(FILES / f"{name}.weights.h5")
    assert np.abs(model.predict(PREDICTIONS["x"]) - PREDICTIONS[name]).max() < TOLERANCE


def test_load_weights_from_a_legacy_model_file():
    """Keras's load_weights("model.h5") reads a whole legacy model file's weights too."""
    model = load_model(FILES / "lenet5.keras")
    model.set_weights([np.zeros_like(w) for w in model.get_weights()])
    model.load_weights(FILES / "lenet5.h5")
    assert np.abs(model.predict(PREDICTIONS["x"]) - PREDICTIONS["lenet5"]).max() < TOLERANCE


@pytest.mark.parametrize("file_name", ["residual.weights.h5", "inception.weights.h5"])
def test_a_weights_file_alone_says_what_to_do(file_name):
    for loader in (load_model, load_model_file):
        message = one_line_error(FILES / file_name, loader)
        assert "holds only weights" in message and "load_weights" in message


def test_weights_only_files_are_told_apart():
    from visualcnn.engine.keras_legacy_h5 import is_weights_only_file

    assert is_weights_only_file(FILES / "residual.weights.h5")
    for name in ("residual.h5", "residual.keras", "make_keras_files.py"):
        assert not is_weights_only_file(FILES / name), name


@pytest.mark.parametrize("file_name", ["unsupported.keras", "unsupported.h5"])
def test_unsupported_layer_is_named(file_name):
    message = one_line_error(FILES / file_name)
    assert "LSTM ('lstm')" in message


# --- the command line ---------------------------------------------------------------------

def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "visualcnn", *args], capture_output=True, text=True,
                          timeout=300, env={**__import__("os").environ, "COLUMNS": "100"})


@pytest.mark.parametrize("file_name", ["residual.keras", "lenet5.h5"])
def test_cli_summary(file_name):
    result = run_cli("summary", str(FILES / file_name))
    assert result.returncode == 0, result.stderr
    model = load_model(FILES / file_name)
    assert f"Total params: {model.count_params():,}" in result.stdout
    for layer in model.layers:
        assert layer.name in result.stdout and layer.class_name in result.stdout


@pytest.mark.parametrize("file_name", ["lenet5.keras", "inception.h5"])
def test_cli_evaluate(file_name):
    result = run_cli("evaluate", str(FILES / file_name), "--json")
    assert result.returncode == 0, result.stderr
    _, (x, labels) = load_mnist()
    ours = load_model(FILES / file_name).predict((x.astype(np.float32) / 255.0)[..., None])
    reported = json.loads(result.stdout.strip().splitlines()[-1])
    assert reported["test_accuracy"] == pytest.approx((ours.argmax(1) == labels).mean(), abs=1e-6), reported
    # the trained model, not an untrained one: close to Keras's accuracy on the first 1,000 digits
    keras_accuracy = (PREDICTIONS[f"{stem(file_name)}_1000"].argmax(1) == labels[:1000]).mean()
    assert keras_accuracy > 0.5 and abs(reported["test_accuracy"] - keras_accuracy) < 0.1


def test_cli_names_a_bad_file(tmp_path):
    damaged = tmp_path / "lenet5.h5"
    damaged.write_bytes((FILES / "lenet5.h5").read_bytes()[:5000])
    result = run_cli("summary", str(damaged))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "lenet5.h5" in lines[0] and "Traceback" not in result.stderr, result.stderr


# --- Keras 2 (tf.keras) files, written in its layout ------------------------------------------

KERAS2_SEQUENTIAL = {"class_name": "Sequential", "config": {"name": "sequential", "layers": [
    {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 8, 8, 1], "dtype": "float32",
                                            "sparse": False, "ragged": False, "name": "conv2d_input"}},
    {"class_name": "Conv2D", "config": {"name": "conv2d", "trainable": True, "dtype": "float32",
                                        "batch_input_shape": [None, 8, 8, 1], "filters": 3,
                                        "kernel_size": [3, 3],
                                        "strides": [1, 1], "padding": "valid", "activation": "relu"}},
    {"class_name": "BatchNormalization", "config": {"name": "batch_normalization", "trainable": True,
                                                    "dtype": "float32", "axis": [3], "momentum": 0.99,
                                                    "epsilon": 0.001}},
    {"class_name": "Flatten", "config": {"name": "flatten", "trainable": True, "dtype": "float32"}},
    {"class_name": "Dense", "config": {"name": "dense", "trainable": True, "dtype": "float32", "units": 4,
                                       "activation": "softmax"}}]}}

KERAS2_FUNCTIONAL = {"class_name": "Functional", "config": {
    "name": "model", "layers": [
        {"class_name": "InputLayer", "name": "input_1", "inbound_nodes": [],
         "config": {"batch_input_shape": [None, 8, 8, 1], "dtype": "float32", "name": "input_1"}},
        {"class_name": "Conv2D", "name": "conv2d", "inbound_nodes": [[["input_1", 0, 0, {}]]],
         "config": {"name": "conv2d", "filters": 2, "kernel_size": [3, 3], "padding": "same"}},
        {"class_name": "Conv2D", "name": "conv2d_1", "inbound_nodes": [[["input_1", 0, 0, {}]]],
         "config": {"name": "conv2d_1", "filters": 2, "kernel_size": [1, 1], "use_bias": False}},
        {"class_name": "Add", "name": "add", "inbound_nodes": [[["conv2d", 0, 0, {}], ["conv2d_1", 0, 0, {}]]],
         "config": {"name": "add"}},
        {"class_name": "BatchNormalization", "name": "batch_normalization", "inbound_nodes": [[["add", 0, 0, {}]]],
         "config": {"name": "batch_normalization", "axis": [3]}},
        {"class_name": "GlobalAveragePooling2D", "name": "global_average_pooling2d",
         "inbound_nodes": [[["batch_normalization", 0, 0, {}]]], "config": {"name": "global_average_pooling2d"}},
        {"class_name": "Dense", "name": "dense", "inbound_nodes": [[["global_average_pooling2d", 0, 0, {}]]],
         "config": {"name": "dense", "units": 3}}],
    "input_layers": [["input_1", 0, 0]], "output_layers": [["dense", 0, 0]]}}


def keras2_weights(config: dict, seed=0) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Random weights for a config's layers, named as tf.keras names them ("conv2d/kernel:0"),
    in its legacy order (trainable, then non-trainable)."""
    model = model_from_json(json.dumps(config))
    model.build()
    rng = np.random.default_rng(seed)
    weights = {}
    for layer in model.layers:
        arrays = []
        for spec in layer.weight_specs:
            value = rng.normal(size=spec.shape).astype(np.float32)
            if spec.name == "moving_variance":
                value = np.abs(value) + 0.5
            arrays.append((f"{layer.name}/{spec.name}:0", value))
        weights[layer.name] = arrays
    return weights


def write_keras2_layer_weights(group, layer_names, weights) -> None:
    """save_weights_to_hdf5_group of tf.keras 2 (keras/saving/hdf5_format.py)."""
    group.attrs["layer_names"] = [name.encode("utf8") for name in layer_names]
    group.attrs["backend"] = b"tensorflow"
    group.attrs["keras_version"] = b"2.11.0"
    for name in sorted(layer_names):
        layer_group = group.create_group(name)
        entries = weights.get(name, [])
        # an empty float64 array for a layer without weights, as h5py stores Keras's empty list
        layer_group.attrs["weight_names"] = [n.encode("utf8") for n, _ in entries] if entries else np.array([])
        for weight_name, value in entries:
            layer_group.create_dataset(weight_name, data=value)


def write_keras2_model(path, config, weights, layer_names, training=True) -> None:
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = "2.11.0"
        f.attrs["backend"] = "tensorflow"
        f.attrs["model_config"] = json.dumps(config).encode("utf8")
        if training:
            f.attrs["training_config"] = json.dumps({
                "loss": "sparse_categorical_crossentropy", "metrics": [["accuracy"]],
                "optimizer_config": {"class_name": "Custom>Adam", "config": {"name": "Adam", "learning_rate": 0.003}}})
        write_keras2_layer_weights(f.create_group("model_weights"), layer_names, weights)


def expected_model(config, weights):
    model = model_from_json(json.dumps(config))
    model.build()
    model.set_weights([value for layer in model.layers for _, value in weights.get(layer.name, [])])
    return model


@pytest.mark.parametrize("config, layer_names", [
    (KERAS2_SEQUENTIAL, ["conv2d", "batch_normalization", "flatten", "dense"]),
    (KERAS2_FUNCTIONAL, ["input_1", "conv2d", "conv2d_1", "add", "batch_normalization",
                         "global_average_pooling2d", "dense"]),
], ids=["sequential", "functional"])
def test_keras2_model_file(tmp_path, config, layer_names):
    weights = keras2_weights(config)
    path = tmp_path / "model.h5"
    # Keras's legacy JSON encoder may write a tuple as {"class_name": "__tuple__", "items": [...]}
    written = json.loads(json.dumps(config))
    written["config"]["layers"][1]["config"]["kernel_size"] = {"class_name": "__tuple__", "items": [3, 3]}
    write_keras2_model(path, written, weights, layer_names)
    model_file = load_model_file(path)
    assert model_file.training.optimizer == "adam" and model_file.training.learning_rate == pytest.approx(0.003)
    model = load_model(path)
    x = np.random.default_rng(1).random((5, 8, 8, 1), dtype=np.float32)
    np.testing.assert_array_equal(model.predict(x), expected_model(config, weights).predict(x))


def test_keras2_weights_by_name_whatever_their_stored_order(tmp_path):
    """A weight is matched by its name: a BatchNormalization listing moving_mean first still loads."""
    weights = keras2_weights(KERAS2_SEQUENTIAL)
    shuffled = {**weights, "batch_normalization": weights["batch_normalization"][::-1]}
    path = tmp_path / "model.h5"
    write_keras2_model(path, KERAS2_SEQUENTIAL, shuffled, ["conv2d", "batch_normalization", "flatten", "dense"])
    bn = load_model(path).layers[1]
    for spec, value in zip(bn.weight_specs, bn.weights):
        np.testing.assert_array_equal(value, dict(weights["batch_normalization"])[f"batch_normalization/{spec.name}:0"])


def test_keras2_weights_only_file(tmp_path):
    """tf.keras 2's model.save_weights("w.h5"): layer_names at the root; loaded by order, as Keras does."""
    weights = keras2_weights(KERAS2_SEQUENTIAL, seed=3)
    path = tmp_path / "w.h5"
    with h5py.File(path, "w") as f:
        write_keras2_layer_weights(f, ["conv2d", "batch_normalization", "flatten", "dense"], weights)
    message = one_line_error(path)
    assert "holds only weights" in message
    from visualcnn.engine.keras_legacy_h5 import is_weights_only_file

    assert is_weights_only_file(path)
    model = model_from_json(json.dumps(KERAS2_SEQUENTIAL))
    model.build()
    model.load_weights(path)
    x = np.random.default_rng(1).random((3, 8, 8, 1), dtype=np.float32)
    np.testing.assert_array_equal(model.predict(x), expected_model(KERAS2_SEQUENTIAL, weights).predict(x))


# --- damaged and hostile files --------------------------------------------------------------

# lenet5.h5's layer names (Keras numbers them on from the models made before it in the same run)
LENET = [layer.name for layer in load_model_file(FILES / "lenet5.h5").model.layers]
assert [name.rstrip("_0123456789") for name in LENET] == [
    "conv2d", "average_pooling2d", "conv2d", "average_pooling2d", "flatten", "dense", "dense", "dense"]


def copy_fixture(tmp_path, name="lenet5.h5") -> Path:
    path = tmp_path / name
    shutil.copyfile(FILES / name, path)
    return path


@pytest.mark.parametrize("keep", [8, 100, 2000, 100_000, 280_000])
def test_truncated_h5(tmp_path, keep):
    path = tmp_path / "lenet5.h5"
    path.write_bytes((FILES / "lenet5.h5").read_bytes()[:keep])
    message = one_line_error(path)
    assert "damaged or truncated" in message or "holds no weights" in message or "cannot be read" in message


def test_hdf5_magic_then_garbage(tmp_path):
    path = tmp_path / "model.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 10)
    assert "damaged or truncated" in one_line_error(path)


def test_hdf5_without_model_config(tmp_path):
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    message = one_line_error(path)
    assert "not a Keras model" in message and "model_config" in message


@pytest.mark.parametrize("value, expected", [
    ("{not json", "not valid JSON"),
    ('{"class_name": "Sequential"}', "config"),
    ("[1, 2]", "no class_name"),
    (np.arange(3), "not text"),
    ('{"class_name": "Sequential", "config": {"layers": [' * 3000, "JSON"),
])
def test_bad_model_config(tmp_path, value, expected):
    path = copy_fixture(tmp_path)
    with h5py.File(path, "a") as f:
        f.attrs["model_config"] = value
    assert expected in one_line_error(path)


def test_wrong_weight_shape(tmp_path):
    path = copy_fixture(tmp_path)
    with h5py.File(path, "a") as f:
        group = f[f"model_weights/{LENET[5]}"]
        name = next(n for n in group.attrs["weight_names"] if n.endswith("kernel"))
        del group[name]
        group.create_dataset(name, data=np.zeros((3, 3), np.float32))
    message = one_line_error(path)
    assert f"{LENET[5]}/kernel" in message and "(3, 3)" in message and "(400, 120)" in message


def test_missing_and_extra_layer_weights(tmp_path):
    path = copy_fixture(tmp_path)
    with h5py.File(path, "a") as f:
        del f[f"model_weights/{LENET[2]}"]
    assert f"'{LENET[2]}'" in one_line_error(path)
    path = copy_fixture(tmp_path)
    with h5py.File(path, "a") as f:
        group = f["model_weights"]
        group.attrs["weight_names"] = group.attrs["layer_names"]
        group[LENET[4]].attrs["weight_names"] = ["flatten/kernel"]
        group[LENET[4]].create_dataset("flatten/kernel", data=np.zeros(3, np.float32))
    assert f"'{LENET[4]}' (Flatten), which has none" in one_line_error(path)


def test_weight_name_without_its_array(tmp_path):
    path = copy_fixture(tmp_path)
    with h5py.File(path, "a") as f:
        group = f[f"model_weights/{LENET[6]}"]
        names = list(group.attrs["weight_names"])
        del group[names[1]]
    assert "no such array" in one_line_error(path)


def test_nan_weights(tmp_path):
    path = copy_fixture(tmp_path)
    with h5py.File(path, "a") as f:
        group = f[f"model_weights/{LENET[7]}"]
        name = next(n for n in group.attrs["weight_names"] if n.endswith("bias"))
        group[name][0] = np.nan
    assert "NaN" in one_line_error(path)


def test_links_are_refused(tmp_path):
    path = copy_fixture(tmp_path)
    with h5py.File(path, "a") as f:
        group = f[f"model_weights/{LENET[6]}"]
        name = next(n for n in group.attrs["weight_names"] if n.endswith("bias"))
        del group[name]
        group[name] = h5py.ExternalLink("/etc/passwd", "/x")
    assert "link" in one_line_error(path)
    path = copy_fixture(tmp_path)
    with h5py.File(path, "a") as f:
        del f[f"model_weights/{LENET[5]}"]
        f[f"model_weights/{LENET[5]}"] = h5py.SoftLink(f"/model_weights/{LENET[6]}")
    assert "link" in one_line_error(path)


def test_a_huge_declared_shape_is_refused_before_reading(tmp_path):
    path = copy_fixture(tmp_path)
    with h5py.File(path, "a") as f:
        group = f[f"model_weights/{LENET[5]}"]
        name = next(n for n in group.attrs["weight_names"] if n.endswith("kernel"))
        del group[name]
        group.create_dataset(name, shape=(1 << 20, 1 << 20), dtype=np.float32)  # 4 TB, never allocated
    assert "does not match" in one_line_error(path)


def test_layer_names_listing_a_missing_group(tmp_path):
    path = copy_fixture(tmp_path)
    with h5py.File(path, "a") as f:
        f["model_weights"].attrs["layer_names"] = [LENET[0].encode(), b"ghost"]
    assert "'ghost'" in one_line_error(path)


def test_integer_weights_are_refused(tmp_path):
    path = copy_fixture(tmp_path)
    with h5py.File(path, "a") as f:
        group = f[f"model_weights/{LENET[5]}"]
        name = next(n for n in group.attrs["weight_names"] if n.endswith("bias"))
        del group[name]
        group.create_dataset(name, data=np.zeros(120, np.int32))
    assert "int32" in one_line_error(path)


def test_load_weights_from_another_model(tmp_path):
    model = load_model(FILES / "residual.keras")
    before = model.get_weights()
    with pytest.raises(ConfigError) as info:
        model.load_weights(FILES / "lenet5.h5")
    assert "\n" not in str(info.value) and "another model" in str(info.value)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_chunked_name_lists(tmp_path):
    """A name list too large for one HDF5 header is stored as layer_names0, layer_names1, ... (both Keras versions)."""
    path = copy_fixture(tmp_path)
    with h5py.File(path, "a") as f:
        group = f["model_weights"]
        names = list(group.attrs["layer_names"])
        del group.attrs["layer_names"]
        group.attrs["layer_names0"], group.attrs["layer_names1"] = names[:3], names[3:]
    model = load_model(path)
    assert np.abs(model.predict(PREDICTIONS["x"]) - PREDICTIONS["lenet5"]).max() < TOLERANCE


def test_random_damage_is_a_model_or_one_line(tmp_path):
    """h5py never reaches the user: bytes flipped, zeroed or cut anywhere give a model or a ConfigError."""
    source = (FILES / "residual.h5").read_bytes()
    rng = np.random.default_rng(5)
    path = tmp_path / "residual.h5"
    refused = 0
    for _ in range(60):
        data = bytearray(source)
        at = int(rng.integers(len(data)))
        if rng.random() < 0.3:
            data = data[:at]
        else:
            within = max(min(at, 4096), 1) if rng.random() < 0.5 else len(data)  # often the headers
            for k in rng.integers(within, size=int(rng.integers(1, 20))):
                data[k] ^= 1 << int(rng.integers(8))
        path.write_bytes(bytes(data))
        try:
            load_model(path)
        except ConfigError as exc:
            assert "\n" not in str(exc)
            refused += 1
    assert refused > 20  # most of this damage is caught
