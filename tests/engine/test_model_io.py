"""Model files: the VisualCNN format, Keras JSON, and every kind of broken file."""

import json

import pytest

from visualcnn.engine import ConfigError, model_from_json, read_model_file, summarize
from visualcnn.engine.model_io import load_model_file, model_to_json, save_model_file
from visualcnn.resources import preset_dir

SEED = preset_dir() / "seed_cnn.json"


def doc(**overrides):
    base = {"format": "visualcnn.model", "version": 1, "name": "m", "input_shape": [28, 28, 1],
            "layers": [{"class_name": "Conv2D", "config": {"filters": 32, "kernel_size": [3, 3], "activation": "relu"}},
                       {"class_name": "Flatten"}, {"class_name": "Dense", "config": {"units": 10}}]}
    base.update(overrides)
    return json.dumps(base)


def test_omitted_keys_take_keras_defaults():
    model = model_from_json(doc())
    conv = model.layers[0]
    assert conv.config["strides"] == (1, 1) and conv.config["padding"] == "valid"
    assert [layer.name for layer in model.layers] == ["conv2d", "flatten", "dense"]


def test_round_trip_through_our_format(tmp_path):
    model_file = load_model_file(SEED)
    path = tmp_path / "copy.json"
    save_model_file(path, model_file.model, training=model_file.training)
    again = load_model_file(path)
    assert summarize(again.model) == summarize(model_file.model)
    assert again.training == model_file.training
    assert not list(tmp_path.glob(".*.tmp")), "the atomic write leaves no temporary file behind"


def test_training_section_is_optional_and_validated():
    assert read_model_file(doc()).training is None
    training = read_model_file(doc(training={"optimizer": "sgd", "epochs": 2})).training
    assert training.optimizer == "sgd" and training.learning_rate == 0.01 and training.epochs == 2
    with pytest.raises(ConfigError, match="training: optimizer expected one of adam, sgd, rmsprop"):
        read_model_file(doc(training={"optimizer": "adamw"}))
    with pytest.raises(ConfigError, match="did you mean 'batch_size'"):
        read_model_file(doc(training={"batchsize": 3}))
    with pytest.raises(ConfigError, match="learning_rate expected a number > 0"):
        read_model_file(doc(training={"learning_rate": 0}))


def test_summarize_dict_shape():
    result = summarize(model_from_json(doc()))
    first = result["layers"][0]
    assert first["name"] == "conv2d" and first["class_name"] == "Conv2D"
    assert first["output_shape"] == [None, 26, 26, 32] and first["params"] == 320
    assert first["trainable_params"] == 320 and first["receptive_field"] == 3 and first["jump"] == 1
    assert "params = 3*3*1*32 + 32 = 320" in first["derivation"]
    assert result["total_params"] == 320 + 26 * 26 * 32 * 10 + 10
    assert json.loads(json.dumps(result)) == result


def test_keras_json_minimal_and_keras2_style():
    keras3 = {"class_name": "Sequential", "config": {"name": "k", "layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, 8, 8, 1]}},
        {"class_name": "Conv2D", "config": {"name": "c", "filters": 2, "kernel_size": [3, 3]}}]}}
    assert model_from_json(json.dumps(keras3)).layers[0].name == "c"
    keras2 = {"class_name": "Sequential", "config": {"layers": [
        {"class_name": "Dense", "config": {"units": 3, "batch_input_shape": [None, 5]}}]}}
    assert model_from_json(json.dumps(keras2)).input_shape == (5,)
    built = {"class_name": "Sequential", "config": {"build_input_shape": [None, 4], "layers": [
        {"class_name": "Dense", "config": {"units": 3}}]}}
    assert model_from_json(json.dumps(built)).input_shape == (4,)


BROKEN = [
    ("", "not valid JSON"),
    ("{", "not valid JSON"),
    ("[1, 2]", "expected a JSON object at the top level"),
    ('{"hello": 1}', "not a model file"),
    (doc(format="other"), '"format" must be "visualcnn.model"'),
    (doc(version=7), '"version" 7 is not supported'),
    (doc(input_shape="28x28"), '"input_shape" must be a list'),
    (doc(input_shape=[28, -1, 1]), "expected a list of positive integers"),
    (doc(input_shape=[1, 2, 3, 4]), "input shape must be 1 to 3 positive integers"),
    (doc(layers={"a": 1}), '"layers" must be a list'),
    (doc(layers=[3]), "layer 1: expected an object"),
    (doc(layers=[{"class_name": "Conv3D", "config": {}}]), "layer 1: unknown layer type 'Conv3D'"),
    (doc(layers=[{"config": {}}]), "layer 1: missing class_name"),
    (doc(layers=[{"class_name": "Dense", "config": []}]), "config must be an object"),
    (doc(layers=[{"class_name": "Dense", "config": {"units": "x"}}]), "Dense: argument 'units' expected an integer"),
    (doc(layers=[{"class_name": "Dense", "config": {"units": 3}, "extra": 1}]), "unknown key 'extra'"),
    (doc(layers=[{"class_name": "Conv2D", "config": {"filters": 3, "kernel_size": 99}}]), "does not fit the 28x28 input"),
    (doc(surprise=True), "unknown top-level key 'surprise'"),
    (doc().replace('"units": 10', '"units": NaN'), "NaN is not allowed"),
    (doc().replace('"units": 10', '"units": Infinity'), "Infinity is not allowed"),
    ("[" * 100000 + "]" * 100000, "nested too deeply"),
    ('{"class_name": "Functional", "config": {}}', "only Sequential models are supported"),
    ('{"class_name": "Sequential", "config": {"layers": []}}', "has no input shape"),
]


@pytest.mark.parametrize("text,message", BROKEN, ids=[m for _, m in BROKEN])
def test_broken_documents_raise_config_error_naming_the_problem(text, message):
    with pytest.raises(ConfigError) as info:
        model_from_json(text)
    assert message in str(info.value)


def test_missing_file_folder_and_binary(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_model_file(tmp_path / "nope.json")
    with pytest.raises(ConfigError, match="is a folder"):
        load_model_file(tmp_path)
    binary = tmp_path / "b.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="not a text file"):
        load_model_file(binary)


def test_model_to_json_is_compact_and_readable():
    text = model_to_json(load_model_file(SEED).model)
    first = json.loads(text)["layers"][0]
    assert first == {"class_name": "Conv2D", "config": {"name": "conv2d", "filters": 32, "kernel_size": [3, 3],
                                                        "activation": "relu"}}
