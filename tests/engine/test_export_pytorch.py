"""PyTorch export: the folder's model.py, loaded with its safetensors weights, predicts
what we predict (within 1e-5) for every preset, every layer class in one graph, a table of
layer settings and every activation, trained and untrained; the weight files' keys are
the module's state_dict keys; a layer without a translation is refused by name; train.py
runs an epoch. PyTorch is not a dependency of VisualCNN: skipped without it."""

import importlib.util
import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from safetensors.numpy import load_file  # noqa: E402

from visualcnn.engine import Input, Model, Sequential, layers as L, load_model_file  # noqa: E402
from visualcnn.engine.export import ExportError, export, problems  # noqa: E402
from visualcnn.engine.export import pytorch_folder, torch_layers  # noqa: E402
from visualcnn.engine.layers import LAYER_CLASSES  # noqa: E402
from visualcnn.resources import resource_dir  # noqa: E402

# The graph holding every layer class, the table of layer settings and the weight
# randomiser are the ONNX export's test cases (one home for them).
sys.path.insert(0, str(Path(__file__).parent))
from test_export_onnx import ACTIVATIONS, SETTINGS, chain, every_layer_graph, randomise  # noqa: E402

PRESETS = sorted((resource_dir() / "presets").glob("*.json"))
TOL = 1e-5
_loaded = itertools.count()


def load_folder(folder: Path):
    """model.py of an exported folder as a fresh module (its own name each time)."""
    spec = importlib.util.spec_from_file_location(f"exported_model_{next(_loaded)}", folder / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def exported(model, tmp_path, name="out"):
    folder = tmp_path / name
    export(model, folder, "pytorch")
    return folder, load_folder(folder)


def channels_first(x):
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if x.ndim == 4 else x)


def torch_predict(net, x):
    with torch.no_grad():
        y = net(channels_first(x)).numpy()
    return y.transpose(0, 2, 3, 1) if y.ndim == 4 else y


def images(model, n=7, seed=1):
    return np.random.default_rng(seed).random((n, *model.input_shape), dtype=np.float32)


def assert_same_predictions(model, tmp_path, n=7):
    folder, module = exported(model, tmp_path)
    net = module.load_model()
    assert not net.training
    x = images(model, n)
    ours, theirs = model.predict(x), torch_predict(net, x)
    assert theirs.shape == ours.shape
    np.testing.assert_allclose(theirs, ours, rtol=TOL, atol=TOL)
    return folder, module, net


def train_briefly(model, steps=2, n=32, seed=0):
    """A few real optimizer steps: weights and BatchNormalization statistics move."""
    rng = np.random.default_rng(seed)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = rng.random((n, *model.input_shape), dtype=np.float32)
    y = rng.integers(0, model.output_shape[-1], n)
    model.fit(x, y, batch_size=n // steps, epochs=1, verbose=0)
    return model


# --- presets ----------------------------------------------------------------------------

@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_every_preset_predicts_as_ours(preset, tmp_path):
    model = load_model_file(preset).model
    model.build(seed=3)
    randomise(model)
    assert_same_predictions(model, tmp_path)


@pytest.mark.parametrize("name", ["seed_cnn", "resnet_mnist"])
def test_a_trained_preset_predicts_as_ours(name, tmp_path):
    model = load_model_file(resource_dir() / "presets" / f"{name}.json").model
    model.build(seed=1)
    train_briefly(model)
    if name == "resnet_mnist":  # the moving statistics really moved
        bn = next(layer for layer in model.layers if layer.class_name == "BatchNormalization")
        assert not np.allclose(bn.weight("moving_mean"), 0.0)
    assert_same_predictions(model, tmp_path)


def test_an_untrained_model_is_exported_with_the_weights_we_would_start_from(tmp_path):
    model = load_model_file(resource_dir() / "presets" / "lenet5.json").model
    folder, module = exported(model, tmp_path)
    assert not model.built  # the export builds a copy
    initial, trained = load_file(folder / "initial.safetensors"), load_file(folder / "weights.safetensors")
    assert initial.keys() == trained.keys()
    assert all(np.array_equal(initial[k], trained[k]) for k in initial)
    model.build(seed=0)  # the recipe's seed (TrainingConfig's default)
    x = images(model)
    np.testing.assert_allclose(torch_predict(module.load_model(), x), model.predict(x), rtol=TOL, atol=TOL)


def test_initial_weights_are_the_recipes_start_not_the_trained_ones(tmp_path):
    model = load_model_file(resource_dir() / "presets" / "seed_cnn.json").model
    model.build(seed=0)
    fresh = [w.copy() for w in model.get_weights()]
    randomise(model)
    folder, module = exported(model, tmp_path)
    start = module.load_model(folder / "initial.safetensors")
    np.testing.assert_array_equal(start.conv2d.weight.detach().numpy(), fresh[0].transpose(3, 2, 0, 1))
    assert not np.array_equal(module.load_model().conv2d.weight.detach().numpy(), fresh[0].transpose(3, 2, 0, 1))


# --- every layer class in one graph, settings, activations --------------------------------

def test_every_layer_class_has_a_translation():
    assert set(torch_layers.TRANSLATORS) == set(LAYER_CLASSES)  # a new layer class needs a decision here


def test_every_layer_class_in_one_graph_predicts_as_ours(tmp_path):
    model = every_layer_graph()
    model.build(seed=5)
    randomise(model, seed=2)
    assert problems(model, "pytorch") == []
    folder, module, net = assert_same_predictions(model, tmp_path)
    # training mode runs the augmentation, noise and dropout modules: same shape, other values
    net.train()
    torch.manual_seed(0)
    x = channels_first(images(model))
    with torch.no_grad():
        noisy, clean = net(x), net.eval()(x)
    assert noisy.shape == clean.shape and not torch.allclose(noisy, clean)


def test_every_layer_class_in_one_graph_trained_predicts_as_ours(tmp_path):
    model = every_layer_graph()
    model.build(seed=5)
    randomise(model, seed=2)
    train_briefly(model, n=8)
    assert_same_predictions(model, tmp_path)


@pytest.mark.parametrize("case", list(SETTINGS))
def test_layer_settings_predict_as_ours(case, tmp_path):
    shape, layers = SETTINGS[case]
    if case == "concatenate height":
        inputs = Input(shape=shape)
        joined = L.Concatenate(axis=1)([layers[0](inputs), L.Conv2D(3, 1)(inputs)])
        model = Model(inputs, L.Conv2D(2, (3, 1))(joined))
        model.build(seed=7)
        randomise(model, seed=4)
    else:
        model = chain(shape, *layers)
    assert_same_predictions(model, tmp_path)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_every_activation_predicts_as_ours(name, tmp_path):
    model = chain((4, 3, 2), L.Conv2D(5, 1), L.Rescaling(4.0), L.Activation(name),
                  L.Conv2D(3, 1, activation=name))
    assert_same_predictions(model, tmp_path)


def test_tensors_of_five_axes_keep_keras_layout(tmp_path):
    """Only 4-axis tensors are channels-first; a 5-axis one keeps Keras's layout through
    BatchNormalization, PReLU, LayerNormalization, Softmax, Dense and back to an image."""
    model = chain((8, 8, 2), L.Conv2D(4, 1), L.Reshape((2, 4, 8, 4)), L.BatchNormalization(axis=2),
                  L.PReLU(shared_axes=[1]), L.LayerNormalization(axis=[2, 4]), L.Softmax(axis=3), L.Dense(3),
                  L.Reshape((16, 4, 3)), L.Conv2D(2, 1), L.Flatten(), L.Dense(4, activation="softmax"))
    assert_same_predictions(model, tmp_path)


def test_a_merge_of_an_image_and_a_five_axis_tensor_is_refused_naming_it():
    inputs = Input(shape=(4, 4, 2))
    blocks = L.Reshape((1, 4, 4, 2))(inputs)
    model = Model(inputs, L.Flatten()(L.Add(name="mix")([blocks, inputs])))
    if model.analyse().error:
        pytest.skip("the engine refuses this merge itself")
    (line,) = problems(model, "pytorch")
    assert line.startswith("layer 'mix' (Add): it joins an image")


# --- the folder's interface ---------------------------------------------------------------

def test_weight_files_hold_the_state_dict_keys_and_logits_stop_before_the_softmax(tmp_path):
    model = load_model_file(resource_dir() / "presets" / "resnet_mnist.json").model
    model.build(seed=2)
    randomise(model)
    folder, module = exported(model, tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "initial.safetensors", "model.py",
                                                        "train.py", "weights.safetensors"]
    net = module.load_model()
    keys = set(net.state_dict())
    assert set(load_file(folder / "weights.safetensors")) == keys
    assert set(load_file(folder / "initial.safetensors")) == keys
    # one attribute per layer with a module, named after the layer
    assert {name for name, _ in net.named_children()} <= {layer.name for layer in model.layers}
    bn = next(layer for layer in model.layers if layer.class_name == "BatchNormalization")
    assert f"{bn.name}.running_var" in keys
    x = channels_first(images(model))
    with torch.no_grad():
        scores, probabilities = net(x, logits=True), net(x)
    np.testing.assert_allclose(torch.softmax(scores, 1).numpy(), probabilities.numpy(), rtol=1e-6, atol=1e-6)
    assert getattr(net, bn.name).momentum == pytest.approx(1 - bn.config["momentum"])
    assert getattr(net, bn.name).eps == pytest.approx(bn.config["epsilon"])


def test_same_padding_puts_the_odd_pixel_at_the_end(tmp_path):
    model = chain((6, 6, 1), L.Conv2D(1, 2, padding="same", use_bias=False))
    model.set_weights([np.ones((2, 2, 1, 1), np.float32)])
    source = pytorch_folder.module_source(model).source
    assert "F.pad(x, (0, 1, 0, 1))" in source
    x = np.zeros((1, 6, 6, 1), np.float32)
    x[0, 5, 5, 0] = 1.0  # the bottom-right pixel is only seen by the last output
    folder, module = exported(model, tmp_path)
    y = torch_predict(module.load_model(), x)
    assert y[0, 5, 5, 0] == 1.0 and y.sum() == 4.0


def test_a_layer_without_translation_is_refused_naming_it(tmp_path, monkeypatch):
    model = chain((6, 6, 1), L.Conv2D(2, 3, name="edges"), L.ELU(name="soft_corner"))
    monkeypatch.delitem(torch_layers.TRANSLATORS, "ELU")
    found = problems(model, "pytorch")
    assert found == ["layer 'soft_corner' (ELU): PyTorch export has no translation for ELU; "
                     "remove it or replace it with a layer it supports"]
    with pytest.raises(ExportError, match="soft_corner"):
        export(model, tmp_path / "out", "pytorch")
    assert list(tmp_path.iterdir()) == []


def test_a_model_with_an_error_and_an_empty_model_are_refused():
    assert problems(Sequential([Input(shape=(28, 28, 1))]), "pytorch") == [
        "model 'sequential' has no layers; add at least one before exporting"]
    broken = Sequential([Input(shape=(4, 4, 1)), L.Conv2D(2, 3), L.Conv2D(2, 3)])
    (line,) = problems(broken, "pytorch")
    assert line.startswith("the model has an error: ") and "does not fit" in line


def test_train_script_runs_an_epoch_and_saves(tmp_path):
    model = load_model_file(resource_dir() / "presets" / "seed_cnn.json").model
    folder, _ = exported(model, tmp_path)
    saved = tmp_path / "trained.safetensors"
    done = subprocess.run([sys.executable, str(folder / "train.py"), "--limit", "256", "--epochs", "1",
                           "--device", "cpu", "--save", str(saved)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "epoch 1/1" in done.stdout and "test accuracy:" in done.stdout
    accuracy = float(done.stdout.split("test accuracy:")[1].split()[0])
    assert 0.0 <= accuracy <= 1.0
    after, before = load_file(saved), load_file(folder / "initial.safetensors")
    assert set(after) == set(before)
    assert not np.allclose(after["conv2d.weight"], before["conv2d.weight"])  # it trained from the start weights
