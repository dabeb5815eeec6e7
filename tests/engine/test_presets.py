"""The bundled presets load and give the seed documents' numbers."""

import numpy as np
import pytest

from visualcnn.engine import summarize
from visualcnn.engine.model_io import load_model_file
from visualcnn.resources import preset_dir

PRESETS = sorted(preset_dir().glob("*.json"))


def test_presets_exist():
    assert {p.stem for p in PRESETS} >= {"seed_cnn", "lenet5", "mlp", "seed_conv_dimensions", "seed_pool_dimensions"}


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_every_preset_is_valid_and_described(path):
    model_file = load_model_file(path)
    assert model_file.description
    summarize(model_file.model)


def test_seed_examples():
    conv = summarize(load_model_file(preset_dir() / "seed_conv_dimensions.json").model)["layers"][0]
    assert conv["output_shape"] == [None, 100, 100, 16] and conv["params"] == 80
    pool = summarize(load_model_file(preset_dir() / "seed_pool_dimensions.json").model)["layers"][0]
    assert pool["output_shape"] == [None, 50, 50, 15] and pool["params"] == 0


def test_classifiers_end_in_ten_softmax_units():
    for name in ("seed_cnn", "lenet5", "mlp"):
        model = load_model_file(preset_dir() / f"{name}.json").model
        assert model.output_shape == (None, 10)
        assert model.layers[-1].config["activation"] == "softmax"


def test_every_preset_has_a_readable_title():
    from visualcnn.resources import preset_titles

    infos = preset_titles()
    assert sorted(info.name for info in infos) == [p.stem for p in PRESETS]
    for info in infos:
        assert info.title and "_" not in info.title and info.description
        assert load_model_file(info.path).title == info.title
    assert infos[0].title == "Keras MNIST CNN"


def test_preset_path_by_name_and_unknown_name():
    from visualcnn.resources import preset_path

    assert preset_path("lenet5") == preset_dir() / "lenet5.json"
    assert preset_path("lenet5.json") == preset_dir() / "lenet5.json"
    for bad in ("nope", "../presets/lenet5", "", "."):
        with pytest.raises(FileNotFoundError, match="seed_cnn"):
            preset_path(bad)


def test_bundled_presets_are_recognised_through_links(tmp_path):
    from visualcnn.resources import is_bundled_preset

    seed = preset_dir() / "seed_cnn.json"
    assert is_bundled_preset(seed) and is_bundled_preset(str(seed))
    link = tmp_path / "mine.json"
    link.symlink_to(seed)
    assert is_bundled_preset(link)
    copy = tmp_path / "seed_cnn.json"
    copy.write_text(seed.read_text())
    assert not is_bundled_preset(copy)
    assert not is_bundled_preset(tmp_path / "missing.json")


def test_command_line_names_resolve_to_presets_only_when_no_file_is_meant(tmp_path, monkeypatch):
    from visualcnn.resources import resolve_model_path

    monkeypatch.chdir(tmp_path)
    assert resolve_model_path("seed_cnn") == preset_dir() / "seed_cnn.json"
    (tmp_path / "seed_cnn").write_text("{}")  # a file of that name in the current folder wins
    assert resolve_model_path("seed_cnn").resolve() == tmp_path / "seed_cnn"
    assert resolve_model_path("sub/none.json").as_posix() == "sub/none.json"  # a path: the reader says "no such file"
    with pytest.raises(FileNotFoundError, match="no such model file or preset"):
        resolve_model_path("no_such_thing")


def test_missing_resources_folder_gives_no_presets_not_a_crash(monkeypatch, tmp_path):
    from visualcnn import resources

    monkeypatch.setattr(resources, "_candidates", lambda: [tmp_path / "nowhere"])
    assert resources.preset_titles() == []
    assert not resources.is_bundled_preset(tmp_path / "x.json")
    with pytest.raises(FileNotFoundError, match="resources folder not found"):
        resources.preset_path("seed_cnn")


# Issue 11's graph presets. Parameter counts verified against Keras 3 (torch backend) building
# the same files with the Functional API (model.count_params(), per layer layer.count_params()).
GRAPH_PRESETS = {
    "resnet_mnist": {"total": 156458, "trainable": 155498,
                     "per_layer": {"stem_conv": 288, "stem_bn": 128, "block1_conv1": 9216, "block1_conv2": 9216,
                                   "block2_conv1": 18432, "block2_conv2": 36864, "block2_proj": 2048,
                                   "block2_proj_bn": 256, "block3_conv1": 36864, "block3_proj": 4096,
                                   "predictions": 650}},
    "inception_mnist": {"total": 33514, "trainable": 33514,
                        "per_layer": {"stem_conv": 160, "branch1x1": 272, "branch3x3_reduce": 272,
                                      "branch3x3": 3480, "branch5x5_reduce": 136, "branch5x5": 1608,
                                      "branch_pool_proj": 136, "predictions": 27450}},
    "vgg_mnist": {"total": 218490, "trainable": 218490,
                  "per_layer": {"block1_conv1": 160, "block1_conv2": 2320, "block2_conv1": 4640,
                                "block2_conv2": 9248, "fc1": 200832, "predictions": 1290}},
}


@pytest.mark.parametrize("name", sorted(GRAPH_PRESETS))
def test_architecture_presets_analyse_cleanly_with_their_keras_parameter_counts(name):
    model_file = load_model_file(preset_dir() / f"{name}.json")
    model = model_file.model
    report = model.analyse()
    assert [row.name for row in report.rows if row.status != "ok"] == []
    assert model.output_shape == (None, 10) and model.layers[-1].config["activation"] == "softmax"
    want = GRAPH_PRESETS[name]
    assert model.count_params() == want["total"]
    trainable = sum(int(np.prod(s.shape)) for row in report.rows for s in row.inference.weights if s.trainable)
    assert trainable == want["trainable"]
    params = {row.name: row.inference.params for row in report.rows}
    assert {k: params[k] for k in want["per_layer"]} == want["per_layer"]
    # What a student reads in the Presets menu, and a recipe `visualcnn train NAME` follows.
    assert model_file.title and len(model_file.description) > 300
    training = model_file.training
    assert training is not None and training.optimizer == "adam" and training.batch_size == 64


def _kinds(model):
    return [layer.class_name for layer in model.layers]


def test_resnet_preset_has_residual_blocks_with_batch_norm_and_a_projection():
    model = load_model_file(preset_dir() / "resnet_mnist.json").model
    report = model.analyse()
    assert not report.is_linear
    adds = [i for i, layer in enumerate(model.layers) if layer.class_name == "Add"]
    assert len(adds) >= 2
    for i in adds:
        main, skip = model.inbound[i]
        # the main path ends Conv-BN, the skip comes from before the block (or its 1x1 projection)
        assert model.layers[main].class_name == "BatchNormalization"
        if skip < i - 4:  # identity: straight from before the block
            assert model.layers[skip].class_name in ("Activation", "MaxPooling2D")
        else:  # projection: BN of a 1x1 conv fed from before the block
            (proj,) = model.inbound[skip]
            assert tuple(model.layers[proj].config["kernel_size"]) == (1, 1)
            (source,) = model.inbound[proj]
            assert model.layers[source].name.endswith("_out") and source < main - 4  # the block before's output
        assert report.consumers(i) and model.layers[report.consumers(i)[0]].config["activation"] == "relu"
    projections = [layer for layer in model.layers if layer.class_name == "Conv2D"
                   and tuple(layer.config["kernel_size"]) == (1, 1)]
    assert projections and tuple(projections[0].config["strides"]) == (2, 2)
    assert "GlobalAveragePooling2D" in _kinds(model) and _kinds(model)[-1] == "Dense"
    assert model_file_training_epochs("resnet_mnist") == 3


def model_file_training_epochs(name):
    return load_model_file(preset_dir() / f"{name}.json").training.epochs


def test_inception_preset_joins_four_parallel_branches():
    model = load_model_file(preset_dir() / "inception_mnist.json").model
    report = model.analyse()
    (join,) = [i for i, layer in enumerate(model.layers) if layer.class_name == "Concatenate"]
    assert len(model.inbound[join]) == 4
    sizes = sorted(tuple(model.layers[i].config["kernel_size"]) for i in model.inbound[join])
    assert sizes == [(1, 1), (1, 1), (3, 3), (5, 5)]
    # every branch starts at the same pooled input
    stem = model.get_layer("stem_pool")
    stem_index = model.layers.index(stem)
    assert len(report.consumers(stem_index)) == 4
    assert report.rows[join].inference.output_shape == (None, 14, 14, 56)


def test_vgg_preset_is_a_stack_of_3x3_conv_pairs_and_pools():
    model = load_model_file(preset_dir() / "vgg_mnist.json").model
    assert model.analyse().is_linear
    convs = [layer for layer in model.layers if layer.class_name == "Conv2D"]
    assert len(convs) == 4 and all(tuple(c.config["kernel_size"]) == (3, 3) for c in convs)
    assert _kinds(model)[:6] == ["Conv2D", "Conv2D", "MaxPooling2D"] * 2
