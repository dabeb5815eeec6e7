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
    ('{"class_name": "Functional", "config": {}}', "config.layers must be a list"),
    ('{"class_name": "MyModel", "config": {}}',
     "a 'MyModel' model is not supported; VisualCNN reads Sequential and Functional"),
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


# --- reading hostile files --------------------------------------------------------------

def test_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "notepad.json"
    path.write_bytes(b"\xef\xbb\xbf" + doc().encode())
    assert [layer.name for layer in load_model_file(path).model.layers] == ["conv2d", "flatten", "dense"]
    assert read_model_file("\ufeff" + doc()).model.name == "m"


def test_utf16_with_bom_is_accepted(tmp_path):
    path = tmp_path / "unicode.json"
    path.write_text(doc(), encoding="utf-16")
    assert load_model_file(path).model.name == "m"


def test_device_and_fifo_are_refused_without_reading(tmp_path):
    import os

    with pytest.raises(ConfigError, match="not a regular file"):
        load_model_file("/dev/zero")  # would read until memory runs out
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_model_file(fifo)  # would wait forever for a writer


def test_file_over_the_size_limit_is_refused_before_reading(tmp_path, monkeypatch):
    from visualcnn.engine import model_io

    path = tmp_path / "big.json"
    path.write_text(doc())
    monkeypatch.setattr(model_io, "MAX_FILE_BYTES", 100)
    with pytest.raises(ConfigError, match="too large"):
        model_io.load_model_file(path)


def test_title_is_read_and_checked():
    assert read_model_file(doc(title="My net")).title == "My net"
    with pytest.raises(ConfigError, match='"title" must be a string'):
        read_model_file(doc(title=3))


# --- writing: write_text_atomic ------------------------------------------------------------

def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_write_goes_through_a_symlink_to_its_target(tmp_path):
    from visualcnn.engine.model_io import write_text_atomic

    real = tmp_path / "real" / "model.json"
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    write_text_atomic(link, "new")
    assert link.is_symlink() and real.read_text() == "new"
    assert leftovers(tmp_path) == [] and leftovers(real.parent) == []


def test_existing_mode_is_kept_and_new_files_follow_the_umask(tmp_path):
    import os
    import stat

    from visualcnn.engine.model_io import write_text_atomic

    shared = tmp_path / "shared.json"
    shared.write_text("old")
    shared.chmod(0o664)
    write_text_atomic(shared, "new")
    assert stat.S_IMODE(shared.stat().st_mode) == 0o664 and shared.read_text() == "new"
    old_umask = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "fresh.json", "x")
        os.umask(0o027)
        write_text_atomic(tmp_path / "group.json", "x")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "fresh.json").stat().st_mode) == 0o644  # mkstemp made 0o600
    assert stat.S_IMODE((tmp_path / "group.json").stat().st_mode) == 0o640


@pytest.mark.parametrize("kind", ["fifo", "folder", "device"])
def test_fifo_folder_and_device_are_refused(tmp_path, kind):
    import os

    from visualcnn.engine.model_io import write_text_atomic

    if kind == "fifo":
        target = tmp_path / "pipe.json"
        os.mkfifo(target)
    elif kind == "folder":
        target = tmp_path / "folder.json"
        target.mkdir()
    else:
        target = tmp_path / "null.json"
        target.symlink_to("/dev/null")  # a link to a device: writing through it must not replace /dev/null
    with pytest.raises(OSError) as info:
        write_text_atomic(target, "x")
    message = str(info.value)
    assert message.startswith("cannot save ") and "\n" not in message
    assert ("folder" if kind == "folder" else "not a regular file") in message
    assert leftovers(tmp_path) == []
    assert os.path.exists("/dev/null") and not os.path.isfile("/dev/null")


def test_missing_folder_and_read_only_file_are_clear_errors(tmp_path):
    import os

    from visualcnn.engine.model_io import write_text_atomic

    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_text_atomic(tmp_path / "nowhere" / "m.json", "x")
    if os.geteuid() != 0:  # root may write anything
        locked = tmp_path / "locked.json"
        locked.write_text("keep")
        locked.chmod(0o444)
        with pytest.raises(PermissionError, match="read-only"):
            write_text_atomic(locked, "x")
        assert locked.read_text() == "keep"


@pytest.mark.parametrize("error", [KeyboardInterrupt, OSError])
def test_no_temporary_file_survives_a_failure(tmp_path, monkeypatch, error):
    import os

    from visualcnn.engine.model_io import write_text_atomic

    target = tmp_path / "model.json"
    target.write_text("old")

    def failing_fsync(fd):
        raise error("disk gone")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(error):
        write_text_atomic(target, "new")
    assert target.read_text() == "old"
    assert leftovers(tmp_path) == []


def test_batch_normalization_block_is_saved_with_its_name(tmp_path):
    from visualcnn.engine import Sequential, layers

    model = Sequential([layers.Input(shape=(8, 8, 1)), layers.Conv2D(2, 3), layers.BatchNormalization(name="bn_a"),
                        layers.BatchNormalization(), layers.Flatten(), layers.Dense(10)])
    path = tmp_path / "bn.json"
    save_model_file(path, model)
    saved = json.loads(path.read_text())["layers"]
    assert [entry["config"].get("name") for entry in saved] == ["conv2d", "bn_a", "batch_normalization",
                                                                 "flatten", "dense"]
    assert [layer.name for layer in load_model_file(path).model.layers][1:3] == ["bn_a", "batch_normalization"]


def test_longest_file_name_can_be_saved(tmp_path):
    from visualcnn.engine.model_io import write_text_atomic

    target = tmp_path / ("m" * 250 + ".json")  # 255 bytes: the most a name may have
    write_text_atomic(target, "x")
    assert target.read_text() == "x" and leftovers(tmp_path) == []


# --- the graph form: "inbound" names earlier layers or the input --------------------------

def graph_doc(layers, **overrides):
    base = {"format": "visualcnn.model", "version": 1, "name": "g", "input_shape": [12, 12, 1], "layers": layers}
    base.update(overrides)
    return json.dumps(base)


RESIDUAL = [
    {"class_name": "Conv2D", "config": {"name": "stem", "filters": 4, "kernel_size": 3, "padding": "same"}},
    {"class_name": "Conv2D", "config": {"name": "branch", "filters": 4, "kernel_size": 3, "padding": "same"}},
    {"class_name": "Add", "config": {"name": "add"}, "inbound": ["stem", "branch"]},
    {"class_name": "Flatten"},
    {"class_name": "Dense", "config": {"units": 3}},
]


def test_graph_file_reads_inbound_and_defaults_to_the_entry_before():
    model = model_from_json(graph_doc(RESIDUAL))
    assert [layer.name for layer in model.layers] == ["stem", "branch", "add", "flatten", "dense"]
    assert tuple(model.inbound) == ((-1,), (0,), (0, 1), (2,), (3,))
    report = model.analyse()
    assert report.error is None and report.rows[2].output_shape == (None, 12, 12, 4)
    assert report.total_params == (9 * 1 * 4 + 4) + (9 * 4 * 4 + 4) + (12 * 12 * 4 * 3 + 3)


def test_graph_file_round_trip_writes_inbound_only_where_it_branches(tmp_path):
    model = model_from_json(graph_doc(RESIDUAL, input_name="pixels"))
    data = json.loads(model_to_json(model))
    assert data["input_name"] == "pixels"
    assert [entry.get("inbound") for entry in data["layers"]] == [None, None, ["stem", "branch"], None, None]
    path = tmp_path / "g.json"
    save_model_file(path, model)
    again = load_model_file(path).model
    assert tuple(again.inbound) == tuple(model.inbound) and again.input_name == "pixels"
    assert summarize(again) == summarize(model)


def test_inbound_may_name_the_input_and_unnamed_layers_get_keras_names():
    layers = [{"class_name": "Conv2D", "config": {"filters": 1, "kernel_size": 1}},
              {"class_name": "Add", "inbound": ["conv2d", "input_layer"]},
              {"class_name": "Flatten"}]
    model = model_from_json(graph_doc(layers))
    assert [layer.name for layer in model.layers] == ["conv2d", "add", "flatten"]
    assert tuple(model.inbound) == ((-1,), (0, -1), (1,))
    assert json.loads(model_to_json(model))["layers"][1]["inbound"] == ["conv2d", "input_layer"]
    assert "input_name" not in json.loads(model_to_json(model))


def test_a_file_without_inbound_is_still_a_sequential_model():
    from visualcnn.engine import Sequential

    model = model_from_json(doc())
    assert type(model) is Sequential
    assert "inbound" not in model_to_json(model) and "input_name" not in model_to_json(model)


GRAPH_BROKEN = [
    ([{"class_name": "Flatten", "inbound": ["nope"]}],
     "layer 1 ('flatten'): \"inbound\" names 'nope', which is neither a layer of this file nor the input "
     "'input_layer'"),
    ([{"class_name": "Flatten", "config": {"name": "f"}, "inbound": ["f"]}], "names 'f', the layer itself"),
    ([{"class_name": "Flatten", "inbound": ["dense"]}, {"class_name": "Dense", "config": {"units": 2}}],
     "names 'dense', which comes later (layer 2)"),
    ([{"class_name": "Flatten", "inbound": []}], '"inbound" must be a non-empty list of layer names'),
    ([{"class_name": "Flatten", "inbound": "input_layer"}], '"inbound" must be a non-empty list'),
    ([{"class_name": "Flatten", "inbound": [3]}], '"inbound" must be a non-empty list'),
    ([{"class_name": "Flatten", "config": {"name": "x"}}, {"class_name": "Dense", "config": {"name": "x", "units": 2}}],
     "layer 2: the name 'x' is already used by layer 1"),
    ([{"class_name": "Flatten", "config": {"name": "input_layer"}}],
     "the name 'input_layer' is already used by the input"),
    ([{"class_name": "Flatten", "extra": 1}], "unknown key 'extra' (expected class_name, config and inbound)"),
]


@pytest.mark.parametrize("layers,message", GRAPH_BROKEN, ids=[m[:50] for _, m in GRAPH_BROKEN])
def test_bad_inbound_is_one_clear_error_naming_the_layer(layers, message):
    with pytest.raises(ConfigError) as info:
        read_model_file(graph_doc(layers))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_input_name_is_refused():
    for bad in ("", 3, None):
        with pytest.raises(ConfigError, match='"input_name" must be a non-empty string'):
            read_model_file(graph_doc(RESIDUAL, input_name=bad))


def test_graph_errors_are_shown_by_the_analysis_not_the_reader():
    # a mismatched Add is a valid file: the builder shows it in place, build refuses it
    layers = [{"class_name": "Conv2D", "config": {"filters": 4, "kernel_size": 3}},
              {"class_name": "Add", "inbound": ["conv2d", "input_layer"]}]
    model = read_model_file(graph_doc(layers)).model
    assert "inputs must have the same shape" in model.analyse().error
    with pytest.raises(ConfigError, match="inputs must have the same shape"):
        model_from_json(graph_doc(layers))
