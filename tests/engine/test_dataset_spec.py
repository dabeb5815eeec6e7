"""The "dataset" section and loading a data set for a model's input (engine/dataset_spec.py),
and the recipe taking its classes from the data (engine/recipe.py)."""

import gzip
import json
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visualcnn.engine import ConfigError, Sequential, TrainingConfig, layers
from visualcnn.engine.dataset_spec import (Dataset, DatasetSpec, check_dataset_section, dataset_classes,
                                           input_problem, load_dataset_for, spec_from_argument, stratified_split)
from visualcnn.engine.datasets import FASHION_CLASS_NAMES, IDX_FILE_NAMES, DatasetError, mnist_dir
from visualcnn.engine.model_io import model_to_dict, read_model_file
from visualcnn.engine.recipe import prepare_run, readiness_problem
from visualcnn.engine.training import EpochReport

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from make_shapes_dataset import make_shapes_dataset  # noqa: E402


def write_idx(folder: Path, n_train=20, n_test=10, zipped=True):
    """Four tiny gzipped IDX files in Fashion-MNIST's names (labels 0..9)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, n, images in ((IDX_FILE_NAMES[0], n_train, True), (IDX_FILE_NAMES[1], n_train, False),
                            (IDX_FILE_NAMES[2], n_test, True), (IDX_FILE_NAMES[3], n_test, False)):
        if images:
            body = struct.pack(">iiii", 2051, n, 28, 28) + rng.integers(0, 256, n * 784, dtype=np.uint8).tobytes()
        else:
            body = struct.pack(">ii", 2049, n) + (np.arange(n) % 10).astype(np.uint8).tobytes()
        if zipped:
            (folder / name).write_bytes(gzip.compress(body))
        else:
            (folder / name[:-3]).write_bytes(body)
    return folder


def classifier(input_shape, classes):
    return Sequential([layers.Input(shape=input_shape), layers.Flatten(), layers.Dense(classes, activation="softmax")])


# --- the section --------------------------------------------------------------------------


def test_the_section_is_normalised_and_defaults_are_left_out():
    assert check_dataset_section({"source": "MNIST"}) == {"source": "mnist"}
    assert check_dataset_section({"source": "fashion-mnist"}) == {"source": "fashion_mnist"}
    assert check_dataset_section({"source": "folder", "path": "/d", "test_split": 0.2, "interpolation": "bilinear",
                                  "seed": 1337}) == {"source": "folder", "path": "/d"}
    full = {"source": "folder", "path": "/d", "test_split": 0.25, "interpolation": "area", "seed": 7}
    assert check_dataset_section(full) == full
    assert DatasetSpec.from_dict(full).label == "the folder 'd'"


@pytest.mark.parametrize("section, message", [
    ({"source": "cifar"}, "dataset: source must be one of mnist, fashion_mnist, folder, received 'cifar'"),
    ({"source": "folder"}, 'dataset: source "folder" needs "path"'),
    ({"source": "folder", "path": ""}, "dataset: path must be a folder name"),
    ({"source": "folder", "path": "/d", "test_split": 0}, "test_split must be a fraction above 0 and at most 0.9"),
    ({"source": "folder", "path": "/d", "test_split": True}, "test_split must be a fraction"),
    ({"source": "folder", "path": "/d", "interpolation": "lanczos"},
     "interpolation must be one of bilinear, nearest, bicubic, area"),
    ({"source": "folder", "path": "/d", "seed": -1}, "seed must be a whole number"),
    ({"source": "folder", "path": "/d", "validation_split": 0.1}, '"validation_split" is a training setting'),
    ({"source": "mnist", "colour": "rgb"}, "dataset: unknown key 'colour'"),
])
def test_a_bad_section_is_one_line_naming_the_key(section, message):
    with pytest.raises(ConfigError) as error:
        check_dataset_section(section)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_project_file_keeps_its_dataset_section():
    model = classifier((8, 8, 3), 3)
    data = model_to_dict(model, sections={"dataset": {"source": "folder", "path": "/x", "test_split": 0.3}})
    assert read_model_file(json.dumps(data)).sections["dataset"] == {"source": "folder", "path": "/x",
                                                                     "test_split": 0.3}
    data["dataset"] = {"source": "folder"}
    with pytest.raises(ConfigError, match='needs "path"'):
        read_model_file(json.dumps(data))


def test_data_argument_names_idx_folders_and_image_folders(tmp_path):
    assert spec_from_argument("mnist") == DatasetSpec("mnist")
    assert spec_from_argument("Fashion-MNIST") == DatasetSpec("fashion_mnist")
    assert spec_from_argument(str(mnist_dir())) == DatasetSpec("mnist", str(mnist_dir().resolve()))  # by checksum
    idx = write_idx(tmp_path / "fashion")
    assert spec_from_argument(str(idx)) == DatasetSpec("fashion_mnist", str(idx.resolve()))
    (tmp_path / "pics").mkdir()
    assert spec_from_argument(str(tmp_path / "pics")).source == "folder"
    with pytest.raises(DatasetError, match="not a data set name .* nor an existing folder"):
        spec_from_argument(str(tmp_path / "missing"))


# --- what the model's input needs -----------------------------------------------------------


def test_input_problems_say_what_to_set():
    folder = DatasetSpec("folder", "/d")
    assert input_problem(folder, (32, 32, 3)) is None and input_problem(folder, (20, 30)) is None
    assert input_problem(folder, (784,)) == ("the model's input is 784, but an image folder needs an image input: "
                                             "set the input shape to [height, width, 1] for grayscale or "
                                             "[height, width, 3] for colour")
    assert "[height, width, 3]" in input_problem(folder, (8, 8, 4))
    assert input_problem(DatasetSpec("fashion_mnist"), (28, 28, 1)) is None
    assert input_problem(DatasetSpec("fashion_mnist"), (32, 32, 3)) == (
        "the model's input is 32x32x3, but Fashion-MNIST images are 28x28 grey: set the input shape to [28, 28, 1]")


# --- loading ---------------------------------------------------------------------------------


def test_a_folder_is_split_by_class_and_read_for_the_input(tmp_path):
    root = make_shapes_dataset(tmp_path / "shapes", per_class=5, size=16)
    data = load_dataset_for({"source": "folder", "path": str(root)}, (12, 12, 1))
    assert isinstance(data, Dataset) and data.num_classes == 10 and data.class_names[0] == "circle"
    assert data.x_train.shape == (40, 12, 12, 1) and data.x_test.shape == (10, 12, 12, 1)
    assert np.bincount(data.y_test, minlength=10).tolist() == [1] * 10  # every class is tested
    assert data.description == (f"folder {root}: 40 training and 10 test images, 12x12 grey (bilinear), 10 classes")
    assert data.lines()[1].endswith("50 images in 10 classes, read as 12x12 grayscale (bilinear)")
    assert "  circle: 5 images" in data.lines()
    again = load_dataset_for({"source": "folder", "path": str(root)}, (12, 12, 1))
    assert again is data  # an unchanged folder is not decoded twice
    rgb = load_dataset_for({"source": "folder", "path": str(root), "seed": 5}, (16, 16, 3))
    assert rgb.x_train.shape[1:] == (16, 16, 3) and rgb.input_problem((16, 16, 3)) is None
    assert "load the data set again for this input" in rgb.input_problem((12, 12, 3))
    Image.new("RGB", (16, 16), (1, 2, 3)).save(root / "star" / "new.png")
    assert len(load_dataset_for({"source": "folder", "path": str(root), "seed": 5}, (16, 16, 3)).y_train) == 41


def test_the_split_is_stratified_deterministic_and_keeps_every_class():
    labels = np.repeat(np.arange(3), [10, 2, 1])
    train, test = stratified_split(labels, 0.2, seed=1)
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(13))
    assert np.bincount(labels[test], minlength=3).tolist() == [2, 1, 0]  # 2 of 10; 1 of 2; a lone image trains
    again = stratified_split(labels, 0.2, seed=1)
    assert np.array_equal(train, again[0]) and np.array_equal(test, again[1])
    assert not np.array_equal(test, stratified_split(labels, 0.2, seed=2)[1])


def test_train_and_test_sub_folders_are_the_two_sets(tmp_path):
    for half, count in (("train", 3), ("test", 2)):
        for name, colour in (("cat", (200, 0, 0)), ("dog", (0, 0, 200))):
            for i in range(count):
                (tmp_path / half / name).mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (8, 8), colour).save(tmp_path / half / name / f"{i}.png")
    data = load_dataset_for({"source": "folder", "path": str(tmp_path)}, (8, 8, 3))
    assert data.class_names == ("cat", "dog") and len(data.y_train) == 6 and len(data.y_test) == 4
    assert dataset_classes({"source": "folder", "path": str(tmp_path)}) == ("cat", "dog")
    assert any(line.startswith("test ") for line in data.lines())
    (tmp_path / "test" / "bird").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "test" / "bird" / "0.png")
    with pytest.raises(DatasetError, match="train has classes cat, dog but test has bird, cat, dog"):
        load_dataset_for({"source": "folder", "path": str(tmp_path)}, (8, 8, 3))


def test_fashion_mnist_from_a_folder_of_its_four_files(tmp_path):
    folder = write_idx(tmp_path / "fm")
    data = load_dataset_for({"source": "fashion_mnist", "path": str(folder)}, (28, 28, 1))
    assert data.class_names == FASHION_CLASS_NAMES and data.x_train.shape == (20, 28, 28)
    assert data.description.startswith(f"Fashion-MNIST ({folder}): 20 training and 10 test images")
    (folder / IDX_FILE_NAMES[3]).unlink()
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte.gz: missing file"):
        load_dataset_for({"source": "fashion_mnist", "path": str(folder)}, (28, 28, 1))


def test_fashion_mnist_not_installed_says_what_to_do(monkeypatch, tmp_path):
    from visualcnn.engine import dataset_spec

    monkeypatch.setattr(dataset_spec, "FASHION_MNIST_DIR", tmp_path / "absent")
    with pytest.raises(DatasetError) as error:
        load_dataset_for({"source": "fashion_mnist"}, (28, 28, 1))
    assert str(error.value).startswith(f"Fashion-MNIST is not installed ({tmp_path / 'absent'} is missing): install "
                                       "the Debian package dataset-fashion-mnist, or use a folder holding its four "
                                       "files (train-images-idx3-ubyte.gz")


# --- the recipe takes the classes from the data ----------------------------------------------


def test_readiness_names_the_dataset_and_its_class_count(tmp_path):
    root = make_shapes_dataset(tmp_path / "shapes", per_class=2, size=8)
    spec = {"source": "folder", "path": str(root)}
    config = TrainingConfig()
    assert readiness_problem(classifier((8, 8, 3), 10).analyse(), config, dataset=spec) is None
    assert readiness_problem(classifier((8, 8, 3), 3).analyse(), config, dataset=spec) == (
        "the last layer Dense 'dense' has 3 outputs, but the folder 'shapes' has 10 classes: set its units to 10")
    assert readiness_problem(classifier((8, 8, 3), 10).analyse(), config) == (
        "the model's input is 8x8x3, but MNIST images are 28x28 grey: set the input shape to [28, 28, 1]")
    data = load_dataset_for(spec, (8, 8, 3))
    assert readiness_problem(classifier((8, 8, 3), 10).analyse(), config, dataset=data) is None
    assert dataset_classes(spec) == data.class_names  # kept: asked on every edit
    (root / "zebra").mkdir()
    Image.new("RGB", (8, 8)).save(root / "zebra" / "0.png")
    assert dataset_classes(spec)[-1] == "zebra"  # a new class folder is seen at once
    assert "has 11 classes" in readiness_problem(classifier((8, 8, 3), 10).analyse(), config, dataset=spec)


def test_a_run_on_three_classes_uses_three_outputs_and_one_hot_of_three(tmp_path):
    root = make_shapes_dataset(tmp_path / "s", per_class=6, size=8, classes=("circle", "square", "stripes"))
    data = load_dataset_for({"source": "folder", "path": str(root)}, (8, 8, 3))
    for loss in ("sparse_categorical_crossentropy", "categorical_crossentropy"):
        model = classifier((8, 8, 3), 3)
        prepared = prepare_run(model, TrainingConfig(loss=loss, epochs=2, batch_size=4), data)
        reports = [r for r in prepared.run if isinstance(r, EpochReport)]
        assert len(reports) == 2 and np.isfinite(reports[-1].loss)
        assert prepared.y_test.shape == ((3, 3) if loss == "categorical_crossentropy" else (3,))
    with pytest.raises(ValueError, match="cannot train this model on the folder 's': the last layer Dense 'dense' "
                                         "has 10 outputs, but the folder 's' has 3 classes: set its units to 3"):
        prepare_run(classifier((8, 8, 3), 10), TrainingConfig(), data)


def test_fashion_mnist_files_unzipped_are_read_too(tmp_path):
    folder = write_idx(tmp_path / "plain", zipped=False)
    assert sorted(p.name for p in folder.iterdir())[0] == "t10k-images-idx3-ubyte"
    assert spec_from_argument(str(folder)) == DatasetSpec("fashion_mnist", str(folder.resolve()))
    data = load_dataset_for(spec_from_argument(str(folder)), (28, 28, 1))
    assert data.x_test.shape == (10, 28, 28) and data.y_test.tolist() == list(range(10))
