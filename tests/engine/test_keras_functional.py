"""Keras Functional models read back identically: fixtures from real Keras 3 (make_functional_fixtures.py),
checked without Keras; and the graph form of VisualCNN's own files."""

import gzip
import json
from pathlib import Path

import pytest

from visualcnn.engine import ConfigError, read_model_file, render_summary
from visualcnn.engine.summary import keras_order

FIXTURES = json.loads(gzip.decompress(
    (Path(__file__).parent / "keras_fixtures" / "functional_models.json.gz").read_bytes()))
CASES = FIXTURES["cases"]
FUNCTIONAL = [c for c in CASES if json.loads(c["json"])["class_name"] == "Functional"]


def our_rows(report):
    return [{"name": r.name, "class_name": r.layer.class_name, "output_shape": list(r.output_shape),
             "params": r.params, "trainable_params": r.trainable_params} for r in report.rows]


def check_against_keras(case):
    """Shapes and parameter counts layer by layer, and the summary text, as Keras gave them."""
    model = read_model_file(case["json"]).model
    report = model.analyse()
    assert report.error is None, report.error
    ours = {row["name"]: row for row in our_rows(report)}
    assert [ours.get(row["name"]) for row in case["rows"]] == case["rows"]
    assert len(ours) == len(case["rows"])
    functional = json.loads(case["json"])["class_name"] != "Sequential"
    for width, text in case["summaries"].items():
        assert render_summary(model.name, report, int(width), functional=functional) + "\n" == text, f"width {width}"
    for recorded in case.get("with_options", ()):
        kwargs = recorded["options"]
        assert render_summary(model.name, report, functional=functional, **kwargs) + "\n" == recorded["text"], kwargs


def test_fixtures_are_many_and_cover_branches_and_every_class():
    assert len(FUNCTIONAL) >= 40 and len(CASES) - len(FUNCTIONAL) >= 10
    used = {c for case in CASES for c in case["classes"]}
    assert set(FIXTURES["classes"]) <= used, sorted(set(FIXTURES["classes"]) - used)
    assert {"Add", "Concatenate"} <= used
    assert sum("Connected to" in next(iter(case["summaries"].values())) for case in CASES) >= 20


@pytest.mark.parametrize("case", CASES, ids=lambda c: json.loads(c["json"])["config"]["name"])
def test_keras_functional_json_gives_keras_shapes_params_and_summary(case):
    check_against_keras(case)


def test_keras_order_keeps_rows_the_output_does_not_reach():
    # the builder's table while a graph is being edited: a dangling row, a bad index, a cycle
    assert keras_order([(-1,), (0,), (-1,), (2,)]) == [-1, 2, 3, 0, 1]
    assert keras_order([(-1,), (7,), (0,)]) == [-1, 0, 2, 1]
    assert sorted(keras_order([(2,), (0,), (1,)])) == [-1, 0, 1, 2]


def test_a_graph_with_an_unused_block_still_prints_every_row():
    from visualcnn.engine.analysis import analyse_graph
    from visualcnn.engine.layers import layer_from_config

    layers = [layer_from_config("Conv2D", {"name": n, "filters": 2, "kernel_size": 1}) for n in ("a", "b", "c")]
    report = analyse_graph((4, 4, 1), layers, [(-1,), (-1,), (1,)])
    assert "its output is not used" in report.error
    text = render_summary("m", report, 76, functional=True)
    assert all(f"│ {n} (Conv2D)" in text for n in "abc")


def test_fixtures_check_summary_options():
    recorded = [r["options"] for case in CASES for r in case.get("with_options", ())]
    assert sum("show_trainable" in o for o in recorded) >= 20 and sum("layer_range" in o for o in recorded) >= 20
    assert sum("positions" in o for o in recorded) >= 20


def test_keras_order_sorts_by_depth_then_walk_from_the_output():
    # input -> a -> b -> add(b, c) with c fed by the input: c is as deep as b, met later
    inbound = [(-1,), (0,), (-1,), (1, 2)]
    assert keras_order(inbound) == [-1, 0, 1, 2, 3]
    # a skip straight from the input: the input is deepest, the longer branch first
    assert keras_order([(-1,), (0,), (1, -1)]) == [-1, 0, 1, 2]
    assert keras_order([(-1,), (-1,), (1, 0)]) == [-1, 1, 0, 2]


# --- what VisualCNN refuses, from real Keras 3.15.1 files (keras_fixtures/functional_refusals.json) ---

REAL = json.loads((Path(__file__).parent / "keras_fixtures" / "functional_refusals.json").read_text())
REFUSALS = [
    ("two_inputs", "the model has 2 inputs ('left', 'right'); VisualCNN models have one input"),
    ("two_outputs", "the model has 2 outputs ('head_a', 'head_b'); VisualCNN models have one output"),
    ("shared", "layer 'shared_conv': the layer is called 2 times (a shared layer)"),
    ("unknown_class", "VisualCNN has no LSTM ('lstm'); it supports "),
    ("open_input", "the input shape (None, None, None, 3) has sizes left open (None)"),
    ("int_input", "InputLayer 'input_layer': the input holds int32 values; VisualCNN models take float images"),
]


@pytest.mark.parametrize("key,message", REFUSALS, ids=[k for k, _ in REFUSALS])
def test_unsupported_functional_models_are_one_clear_line(key, message):
    with pytest.raises(ConfigError) as info:
        read_model_file(json.dumps(REAL[key]))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_unknown_classes_list_the_supported_ones():
    with pytest.raises(ConfigError) as info:
        read_model_file(json.dumps(REAL["unknown_class"]))
    assert "Conv2D" in str(info.value) and "Concatenate" in str(info.value)


def test_linear_functional_json_is_a_functional_model_with_the_input_row():
    model = read_model_file(json.dumps(REAL["linear"])).model
    assert [layer.name for layer in model.layers] == ["conv2d", "flatten", "dense"]
    lines = []
    model.summary(line_length=76, print_fn=lines.append)
    assert lines[0].splitlines()[4].startswith("│ input_layer (InputLayer)")


def keras2_functional(class_name="Model"):
    """tf.keras 2's Functional form: inbound_nodes [[[layer, node, tensor, kwargs], ...]]."""
    def layer(cls, name, config, inbound):
        return {"class_name": cls, "name": name, "config": {"name": name, **config},
                "inbound_nodes": [[[source, 0, 0, {}] for source in inbound]] if inbound else []}
    return {"class_name": class_name, "config": {"name": "model", "layers": [
        layer("InputLayer", "input_1", {"batch_input_shape": [None, 10, 10, 1], "dtype": "float32"}, []),
        layer("Conv2D", "conv2d", {"filters": 2, "kernel_size": [3, 3], "padding": "same"}, ["input_1"]),
        layer("Conv2D", "conv2d_1", {"filters": 2, "kernel_size": [1, 1]}, ["input_1"]),
        layer("Concatenate", "concatenate", {"axis": -1}, ["conv2d", "conv2d_1"]),
        layer("Flatten", "flatten", {}, ["concatenate"]),
        layer("Dense", "dense", {"units": 3}, ["flatten"])],
        "input_layers": [["input_1", 0, 0]], "output_layers": [["dense", 0, 0]]}}


@pytest.mark.parametrize("class_name", ["Model", "Functional"])
def test_keras2_functional_json_is_read(class_name):
    model = read_model_file(json.dumps(keras2_functional(class_name))).model
    assert model.input_name == "input_1"
    assert tuple(model.inbound) == ((-1,), (-1,), (0, 1), (2,), (3,))
    assert model.analyse().rows[2].output_shape == (None, 10, 10, 4)


def test_functional_json_in_any_order_and_layers_the_output_does_not_need():
    data = keras2_functional()
    layers = data["config"]["layers"]
    layers.reverse()  # Keras reads its configs in any order; so do we
    layers.append({"class_name": "Dense", "name": "unused", "config": {"units": 2},
                   "inbound_nodes": [[["flatten", 0, 0, {}]]]})
    model = read_model_file(json.dumps(data)).model
    assert [layer.name for layer in model.layers][-1] == "dense" and "unused" not in [l.name for l in model.layers]
    assert model.analyse().error is None


FUNCTIONAL_BROKEN = [
    (lambda d: d["config"]["layers"][3]["inbound_nodes"][0].append(["nowhere", 0, 0, {}]),
     "layer 'concatenate': takes the output of 'nowhere', which is not a layer of the model"),
    (lambda d: d["config"]["layers"][1]["inbound_nodes"][0].__setitem__(0, ["dense", 0, 0, {}]),
     "its inputs form a cycle"),
    (lambda d: d["config"]["layers"][2].__setitem__("name", "conv2d"), "the name 'conv2d' is used by two layers"),
    (lambda d: d["config"]["layers"][1]["inbound_nodes"][0].__setitem__(0, ["input_1", 1, 0, {}]),
     "takes the output of call 2 of 'input_1', a shared layer"),
    (lambda d: d["config"]["layers"][1]["inbound_nodes"][0].__setitem__(0, ["input_1", 0, 1, {}]),
     "takes output 2 of 'input_1'; VisualCNN layers have one output"),
    (lambda d: d["config"]["layers"][4].__setitem__("inbound_nodes", []),
     "layer 'flatten': the layer is not connected to anything"),
    (lambda d: d["config"].__setitem__("output_layers", [["missing", 0, 0]]),
     "the output 'missing' is not one of the model's layers"),
    (lambda d: d["config"].__setitem__("input_layers", [["conv2d", 0, 0]]),
     "the model's input 'conv2d' is a Conv2D, not an InputLayer"),
    (lambda d: d["config"]["layers"][5]["config"].__setitem__("units", 0), "layer 'dense': Dense 'dense': argument"),
    (lambda d: d["config"]["layers"][1]["inbound_nodes"][0][0].__setitem__(3, {"training": "yes"}),
     "layer 'conv2d': the layer is called with {'training': 'yes'}"),
    (lambda d: d["config"].pop("input_layers"), "config.input_layers must name the model's input"),
    (lambda d: d["config"]["layers"].pop(0), "the input 'input_1' is not one of the model's layers"),
    (lambda d: d["config"]["layers"][0]["config"].__setitem__("batch_input_shape", [None, 2, 10, 10, 1]),
     "input shape must be 1 to 3 positive integers such as [28, 28, 1] (height, width, channels), "
     "received [2, 10, 10, 1]"),
]


@pytest.mark.parametrize("edit,message", FUNCTIONAL_BROKEN, ids=[m[:40] for _, m in FUNCTIONAL_BROKEN])
def test_broken_functional_json_is_one_line_naming_the_layer(edit, message):
    data = keras2_functional()
    edit(data)
    with pytest.raises(ConfigError) as info:
        read_model_file(json.dumps(data))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_model_summary_prints_keras_text_and_cuts_at_the_console(capsys, monkeypatch):
    model = read_model_file(json.dumps(keras2_functional())).model
    monkeypatch.setenv("COLUMNS", "300")
    model.summary(line_length=120)
    out = capsys.readouterr().out
    assert out == render_summary(model.name, model.analyse(), 120, functional=True) + "\n"
    assert max(len(line) for line in out.splitlines()) == 120
    monkeypatch.setenv("COLUMNS", "80")  # rich (so Keras) cuts every line at the console's edge
    model.summary(line_length=120)
    cut = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in cut) == 80 and cut[1] == out.splitlines()[1][:80]


@pytest.mark.parametrize("case", FUNCTIONAL[:30], ids=lambda c: json.loads(c["json"])["config"]["name"])
def test_keras_functional_model_survives_our_file_form(case):
    model = read_model_file(case["json"]).model
    data = json.loads(model.to_json())
    assert data["format"] == "visualcnn.model"
    again = read_model_file(json.dumps(data)).model
    assert tuple(again.inbound) == tuple(model.inbound) and again.input_name == model.input_name
    assert our_rows(again.analyse()) == our_rows(model.analyse())
    assert (render_summary(again.name, again.analyse(), 76, functional=True)
            == render_summary(model.name, model.analyse(), 76, functional=True))
    branches = sum(1 for entry in data["layers"] if "inbound" in entry)
    assert branches == sum(1 for i, ins in enumerate(model.inbound) if tuple(ins) != (i - 1,))


def _paths(obj, prefix=()):
    if prefix:
        yield prefix
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for key, value in items:
        yield from _paths(value, prefix + (key,))


@pytest.mark.parametrize("form", ["keras", "visualcnn"])
def test_broken_files_are_config_errors_never_crashes(form):
    """Random damage (a value replaced by a wrong type, a key deleted) anywhere in real files."""
    import copy
    import random

    rng = random.Random(11)
    weird = [None, 0, -1, 1.5, True, "", "x", [], {}, [None], [[]], {"a": 1}, ["input_layer", 0, 0], 10 ** 30]
    crashes = []
    for _ in range(300):
        text = rng.choice(CASES)["json"]
        data = json.loads(text if form == "keras" else read_model_file(text).model.to_json())
        for _ in range(rng.randint(1, 3)):
            path = rng.choice(list(_paths(data)))
            parent = data
            for key in path[:-1]:
                parent = parent[key]
            if rng.random() < 0.2:
                del parent[path[-1]]
            else:
                parent[path[-1]] = copy.deepcopy(rng.choice(weird))
        try:
            read_model_file(json.dumps(data))
        except ConfigError as exc:
            assert "\n" not in str(exc)
        except Exception as exc:  # noqa: BLE001 - the test is that nothing else escapes
            crashes.append(f"{type(exc).__name__}: {exc} at {path}")
    assert not crashes, crashes[:3]


@pytest.mark.parametrize("case", FUNCTIONAL[::3], ids=lambda c: json.loads(c["json"])["config"]["name"])
def test_summary_follows_keras_order_whatever_the_file_order(case):
    """The same graph listed in another topological order prints Keras's table all the same."""
    import random

    model = read_model_file(case["json"]).model
    data = json.loads(model.to_json())
    entries, inbound = data["layers"], [tuple(ins) for ins in model.inbound]
    names = [layer.name for layer in model.layers]
    rng = random.Random(len(entries))
    placed, order = {-1}, []
    while len(order) < len(entries) - 1:  # the output stays last
        ready = [i for i in range(len(entries) - 1) if i not in placed and set(inbound[i]) <= placed]
        pick = rng.choice(ready)
        placed.add(pick)
        order.append(pick)
    order.append(len(entries) - 1)
    for i, entry in enumerate(entries):
        entry["config"]["name"] = names[i]
        entry["inbound"] = [model.input_name if j == -1 else names[j] for j in inbound[i]]
    data["layers"] = [entries[i] for i in order]
    shuffled = read_model_file(json.dumps(data)).model
    for width, text in case["summaries"].items():
        assert render_summary(shuffled.name, shuffled.analyse(), int(width), functional=True) + "\n" == text


def test_optimizer_params_line_after_training():
    import numpy as np

    model = read_model_file(json.dumps(keras2_functional())).model
    model.compile("adam", "mse")
    lines = []
    model.summary(line_length=76, print_fn=lines.append)
    assert "Optimizer params" not in lines[0]  # Keras counts the optimizer once it is built
    model.fit(np.zeros((2, 10, 10, 1), np.float32), np.zeros((2, 3), np.float32), epochs=1, verbose=0)
    model.summary(line_length=76, print_fn=lines.append)
    trainable = model.analyse().trainable_params
    tail = lines[1].splitlines()[-4:]
    assert tail[0] == f" Total params: {3 * trainable + 2:,} ({(3 * trainable + 2) * 4 / 1024:.2f} KB)"
    assert tail[3] == f" Optimizer params: {2 * trainable + 2:,} ({(2 * trainable + 2) * 4 / 1024:.2f} KB)"


def test_wide_line_length_is_kerass_width_in_a_wide_terminal():
    from visualcnn.engine.summary import wide_line_length

    graph = read_model_file(json.dumps(keras2_functional())).model.analyse()
    linear = read_model_file(json.dumps(REAL["linear"])).model.analyse()
    assert wide_line_length(graph) == 108 and wide_line_length(linear) == 88
    assert wide_line_length(linear, functional=True) == 88  # one input each: Keras's 3-column table
