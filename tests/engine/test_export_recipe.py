"""Every export carries the whole training recipe: each schedule's per-step rates (the
.keras compile_config, the Keras script, PyTorch's train.py) equal the engine's
learning_rate_curve; the callbacks follow Keras's rules; the data set is the project's."""

import ast
import math
import types

import numpy as np
import pytest

from visualcnn.engine import callbacks as engine_callbacks
from visualcnn.engine import schedules
from visualcnn.engine.export import ExportError, export
from visualcnn.engine.export import keras_archive, keras_code, pytorch_folder
from visualcnn.engine.export.script_data import script_data
from visualcnn.engine.export.torch_train_script import train_script
from visualcnn.engine.model_io import load_model_file
from visualcnn.engine.schedules import learning_rate_curve
from visualcnn.engine.training_config import TrainingConfig

SCHEDULES = ("constant", "cosine", "step", "exponential")


@pytest.fixture(scope="module")
def model():
    from pathlib import Path

    import visualcnn

    preset = Path(visualcnn.__file__).resolve().parent.parent / "resources" / "presets" / "seed_cnn.json"
    return load_model_file(preset).model


def _recipe(schedule, **more):
    return TrainingConfig(schedule=schedule, learning_rate=0.01, decay_rate=0.3, decay_epochs=2, epochs=5, **more)


def _namespace(source: str, names: set[str], extra: dict) -> dict:
    """The script's constants and the named functions, executed without running the script."""
    tree = ast.parse(source)
    keep = [node for node in tree.body
            if (isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) and t.id.isupper() for t in node.targets))
            or (isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in names)]
    from pathlib import Path

    space = {"np": np, "math": math, "Path": Path, "__file__": "script.py", **extra}
    exec(compile(ast.Module(keep, []), "<script>", "exec"), space)
    return space


def _engine_rates(training, per_epoch):
    x, rates = learning_rate_curve(training, per_epoch, max_points=10**6)
    return np.rint(x * per_epoch).astype(int) - 1, rates


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_pytorch_train_py_uses_the_engine_rate_at_every_step(model, schedule):
    training = _recipe(schedule)
    source = pytorch_folder.module_source(model)
    space = _namespace(train_script(model, training, source), {"learning_rate_at", "step_schedule"}, {})
    per_epoch = 7
    steps, rates = _engine_rates(training, per_epoch)
    got = [space["learning_rate_at"](int(s), per_epoch, per_epoch * training.epochs) for s in steps]
    assert got == [float(r) for r in rates]  # bit for bit
    if schedule != "constant":
        assert len(set(got)) > 1


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_keras_script_builds_kerass_schedule_with_the_engine_rates(model, schedule):
    training = _recipe(schedule)
    # keras.optimizers.schedules.X stands in as the engine's X: the same arguments, Keras's formulas
    fake = types.SimpleNamespace(optimizers=types.SimpleNamespace(
        schedules=schedules, Adam=lambda learning_rate: learning_rate))
    space = _namespace(keras_code.script(model, training), {"make_optimizer", "step_schedule"}, {"keras": fake})
    per_epoch = 7
    rate = space["make_optimizer"](per_epoch, per_epoch * training.epochs)
    steps, rates = _engine_rates(training, per_epoch)
    got = [rate if isinstance(rate, float) else rate(int(s)) for s in steps]
    assert got == [float(r) for r in rates]


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_keras_archive_compile_config_holds_the_schedule(model, schedule):
    training = _recipe(schedule, batch_size=6000)  # 10 steps an epoch over MNIST's 60,000 images
    rate = keras_archive.compile_config(model, training)["optimizer"]["config"]["learning_rate"]
    steps, rates = _engine_rates(training, 10)
    if schedule == "constant":
        assert rate == 0.01
        return
    assert rate["module"] == "keras.optimizers.schedules"
    made = getattr(schedules, rate["class_name"]).from_config(rate["config"])
    assert [made(int(s)) for s in steps] == [float(r) for r in rates]


def test_reduce_on_plateau_with_a_schedule_is_refused_in_one_line(model, tmp_path):
    training = _recipe("step", reduce_lr_on_plateau=True, monitor="loss")
    with pytest.raises(ExportError, match="use one or the other"):
        export(model, tmp_path / "x.py", "keras-code", training)
    assert not (tmp_path / "x.py").exists()


def test_keras_script_passes_the_callbacks_with_the_recipes_arguments(model):
    training = _recipe("constant", early_stopping=True, patience=4, restore_best_weights=True,
                       reduce_lr_on_plateau=True, reduce_lr_factor=0.5, reduce_lr_patience=1, min_lr=1e-4,
                       monitor="val_accuracy", validation_split=0.1)
    made = {}
    fake = types.SimpleNamespace(callbacks=types.SimpleNamespace(
        EarlyStopping=lambda **kw: made.setdefault("EarlyStopping", kw),
        ReduceLROnPlateau=lambda **kw: made.setdefault("ReduceLROnPlateau", kw)))
    text = keras_code.script(model, training)
    _namespace(text, {"make_callbacks"}, {"keras": fake})["make_callbacks"]()
    assert made == {"EarlyStopping": {"monitor": "val_accuracy", "patience": 4, "restore_best_weights": True},
                    "ReduceLROnPlateau": {"monitor": "val_accuracy", "factor": 0.5, "patience": 1, "min_lr": 1e-4}}
    assert "callbacks=make_callbacks()" in text


class _Net:
    """A stand-in network: its 'weights' are the epoch they were taken at."""

    def __init__(self):
        self.epoch, self.loaded = 0, None

    def state_dict(self):
        import torch

        return {"w": torch.tensor(float(self.epoch))}

    def load_state_dict(self, state):
        self.loaded = float(state["w"])


@pytest.mark.parametrize("monitor,values", [
    ("val_loss", [1.0, 0.8, 0.81, 0.79, 0.85, 0.9, 0.95]),
    ("val_accuracy", [0.5, 0.6, 0.6, 0.59, 0.7, 0.69, 0.68, 0.67]),
])
def test_pytorch_early_stopping_stops_and_restores_as_the_engine(model, monitor, values):
    training = _recipe("constant", early_stopping=True, patience=2, restore_best_weights=True, monitor=monitor,
                       validation_split=0.1)
    space = _namespace(train_script(model, training, pytorch_folder.module_source(model)),
                       {"Watcher", "EarlyStopping", "copy_weights"}, {})
    ours = space["EarlyStopping"](monitor, 2, True)
    net = _Net()
    stopped = None
    for epoch, value in enumerate(values):
        net.epoch = epoch
        if ours.end_of_epoch(epoch, {monitor: value}, net, None, lambda *a: None):
            stopped = epoch
            break
    ours.end_of_training(net, lambda *a: None)
    # the engine's EarlyStopping on the same numbers
    engine = engine_callbacks.EarlyStopping(monitor=monitor, patience=2, restore_best_weights=True)
    engine.model = types.SimpleNamespace(stop_training=False, get_weights=lambda: engine_epoch[0],
                                         set_weights=lambda w: restored.append(w))
    engine_epoch, restored, engine_stop = [0], [], None
    engine.on_train_begin()
    for epoch, value in enumerate(values):
        engine_epoch[0] = epoch
        engine.on_epoch_end(epoch, {monitor: value})
        if engine.model.stop_training:
            engine_stop = epoch
            break
    engine.on_train_end()
    assert stopped == engine_stop is not None
    assert net.loaded == restored[-1]


def test_pytorch_reduce_on_plateau_gives_the_engines_rates(model):
    training = _recipe("constant", reduce_lr_on_plateau=True, reduce_lr_factor=0.5, reduce_lr_patience=1,
                       min_lr=0.002, monitor="loss")
    space = _namespace(train_script(model, training, pytorch_folder.module_source(model)),
                       {"Watcher", "ReduceLROnPlateau", "set_learning_rate"}, {})
    optimizer = types.SimpleNamespace(param_groups=[{"lr": 0.01}])
    ours = space["ReduceLROnPlateau"]("loss", 0.5, 1, 0.002)
    engine = engine_callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_lr=0.002)
    engine_optimizer = types.SimpleNamespace(learning_rate=0.01)
    engine.model = types.SimpleNamespace(optimizer=engine_optimizer)
    engine.on_train_begin()
    losses = [1.0, 0.99995, 1.2, 0.5, 0.6, 0.7, 0.8, 0.9]
    for epoch, loss in enumerate(losses):
        ours.end_of_epoch(epoch, {"loss": loss}, None, optimizer, lambda *a: None)
        engine.on_epoch_end(epoch, {"loss": loss})
        assert optimizer.param_groups[0]["lr"] == pytest.approx(float(np.float32(engine_optimizer.learning_rate)))
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.002)


def test_fashion_mnist_project_exports_scripts_that_read_fashion_mnist(model):
    data = script_data(model, {"source": "fashion_mnist", "path": "/data/fashion"})
    text = keras_code.script(model, TrainingConfig(), data=data)
    assert 'DATA_DIR = "/data/fashion"' in text and '"T-shirt/top"' in text
    assert "keras.datasets.fashion_mnist.load_data()" in text
    torch_text = train_script(model, TrainingConfig(), pytorch_folder.module_source(model), data)
    assert "FashionMNIST(root" in torch_text and "NUM_CLASSES = 10" in torch_text
    ast.parse(text), ast.parse(torch_text)


def test_a_data_set_with_more_classes_than_outputs_is_refused(model, tmp_path):
    from PIL import Image

    for k in range(12):
        (tmp_path / "shapes" / f"class_{k:02d}").mkdir(parents=True)
        Image.new("L", (4, 4), k * 20).save(tmp_path / "shapes" / f"class_{k:02d}" / "a.png")
    with pytest.raises(ExportError, match="has 12 classes but the model outputs 10"):
        script_data(model, {"source": "folder", "path": str(tmp_path / "shapes")})


def test_train_py_reads_an_image_folder_exactly_as_the_engine(tmp_path):
    """Pillow loading in train.py: the same images, resized alike, the same stratified test split."""
    import torch
    from PIL import Image

    from visualcnn.engine.dataset_spec import DatasetSpec, load_dataset_for
    from visualcnn.engine.model_io import model_from_json

    rng = np.random.default_rng(0)
    for name in ("cat", "dog", "emu"):
        (tmp_path / "pets" / name / "more").mkdir(parents=True)
        for k in range(7):
            where = tmp_path / "pets" / name / ("more" if k % 3 == 0 else "") / f"{k}.png"
            Image.fromarray(rng.integers(0, 255, (13, 17, 3), dtype=np.uint8)).save(where)
    (tmp_path / "pets" / "dog" / "notes.txt").write_text("not an image")
    net = model_from_json('{"format": "visualcnn.model", "version": 1, "name": "pets", "input_shape": [8, 8, 3],'
                          ' "layers": [{"class_name": "Flatten", "config": {}},'
                          ' {"class_name": "Dense", "config": {"units": 3, "activation": "softmax"}}]}')
    section = {"source": "folder", "path": str(tmp_path / "pets"), "test_split": 0.3, "interpolation": "bicubic"}
    text = train_script(net, TrainingConfig(), pytorch_folder.module_source(net), script_data(net, section))
    assert 'CLASS_NAMES = ["cat", "dog", "emu"]' in text and "NUM_CLASSES = 3" in text
    space = _namespace(text, {"load_folder", "read_images", "read_image", "class_files", "has_own_test_set",
                              "split_test"}, {"os": __import__("os"), "sys": __import__("sys"), "torch": torch})
    (x, y), (x_test, y_test) = space["load_folder"](str(tmp_path / "pets"))
    data = load_dataset_for(DatasetSpec.from_dict(section), (8, 8, 3))
    assert x.shape == (15, 8, 8, 3) and x_test.shape == (6, 8, 8, 3)
    for ours, engine in ((x, data.x_train), (y, data.y_train), (x_test, data.x_test), (y_test, data.y_test)):
        np.testing.assert_array_equal(ours, engine)


def test_keras_archive_counts_an_image_folders_training_images(model, tmp_path):
    from PIL import Image

    from visualcnn.engine.export.script_data import training_image_count

    for k, name in enumerate(("a", "b")):
        (tmp_path / "two" / name).mkdir(parents=True)
        for i in range(10 + k):
            Image.new("L", (4, 4), i).save(tmp_path / "two" / name / f"{i}.png")
    section = {"source": "folder", "path": str(tmp_path / "two"), "test_split": 0.25}
    assert training_image_count(section) == (10 - 2) + (11 - 3)  # round(2.5) = 2, round(2.75) = 3 held out
    assert training_image_count(None) == 60_000
    training = _recipe("exponential", batch_size=4)
    rate = keras_archive.compile_config(model, training, 16)["optimizer"]["config"]["learning_rate"]
    assert rate["config"]["decay_steps"] == 2 * 4  # DECAY_EPOCHS epochs of ceil(16 / 4) steps


def test_visualcnn_export_reads_the_projects_dataset_section(tmp_path, capsys):
    import json
    from pathlib import Path

    import visualcnn
    from visualcnn.cli import main

    preset = Path(visualcnn.__file__).resolve().parent.parent / "resources" / "presets" / "seed_cnn.json"
    project = json.loads(preset.read_text())
    project["dataset"] = {"source": "fashion_mnist", "path": "fashion"}  # relative: beside the project file
    project["training"].update(schedule="exponential", decay_rate=0.8)
    (tmp_path / "p.json").write_text(json.dumps(project))
    assert main(["export", str(tmp_path / "p.json"), "-o", str(tmp_path / "p.py")]) == 0
    text = (tmp_path / "p.py").read_text()
    assert f"DATA_DIR = {json.dumps(str((tmp_path / 'fashion').resolve()))}" in text
    assert "keras.optimizers.schedules.ExponentialDecay(" in text and "DECAY_RATE = 0.8" in text
    capsys.readouterr()
    project["dataset"] = {"source": "folder", "path": "nowhere"}
    (tmp_path / "q.json").write_text(json.dumps(project))
    assert main(["export", str(tmp_path / "q.json"), "-o", str(tmp_path / "q.py")]) != 0
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "the image folder cannot be read" in error[0]
    assert not (tmp_path / "q.py").exists()


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_real_keras_computes_the_engine_rates_from_the_archive_and_the_script(model, schedule):
    keras = pytest.importorskip("keras")
    training = _recipe(schedule, batch_size=6000)
    steps, rates = _engine_rates(training, 10)
    optimizers = [keras.optimizers.deserialize(keras_archive.compile_config(model, training)["optimizer"])]
    space = _namespace(keras_code.script(model, training), {"make_optimizer", "step_schedule"}, {"keras": keras})
    optimizers.append(space["make_optimizer"](10, 10 * training.epochs))
    for optimizer in optimizers:
        rate = optimizer._learning_rate
        got = np.array([keras.ops.convert_to_numpy(rate(int(s)) if callable(rate) else rate) for s in steps])
        assert got.dtype == np.float32
        # Keras computes in float32 on its backend (its own cos and pow): the engine's rate to
        # within two float32 roundings at every step; the step schedule exactly
        ulps = np.abs(got.astype(np.float64) - rates) / np.spacing(rates.astype(np.float32)).astype(np.float64)
        assert ulps.max() <= (0 if schedule == "step" else 2)
