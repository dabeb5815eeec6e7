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
