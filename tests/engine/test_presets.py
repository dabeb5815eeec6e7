"""The bundled presets load and give the seed documents' numbers."""

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
