"""Every registered layer class carries what the builder learns from it: a student
explanation, a family, a starter config that builds and analyses, a config that survives a
JSON round trip, and argument declarations whose defaults normalise. A new layer file is
checked here without editing this test."""

from __future__ import annotations

import json

import pytest

from visualcnn.engine import analysis
from visualcnn.engine.layers import FAMILIES, LAYER_CLASSES, Activation, Arg, Flatten, Inference, Layer
from visualcnn.engine.layers.arguments import ConfigError, normalise, to_json
from visualcnn.engine.layers.registry import layer_from_config, register, unregister

CLASSES = sorted(LAYER_CLASSES)
IMAGE = (28, 28, 1)


def build(class_name: str) -> Layer:
    cls = LAYER_CLASSES[class_name]
    return cls.from_config(dict(cls.starter_config))


@pytest.mark.parametrize("class_name", CLASSES)
def test_metadata_is_complete(class_name):
    cls = LAYER_CLASSES[class_name]
    assert cls.class_name == class_name
    assert cls.explanation.strip() and "\n" not in cls.explanation, "one line for students"
    assert cls.family in FAMILIES and cls.family != "input", cls.family
    assert isinstance(cls.starter_config, dict) and isinstance(cls.in_palette, bool)
    assert len({a.name for a in cls.ARGS}) == len(cls.ARGS)


@pytest.mark.parametrize("class_name", CLASSES)
def test_every_argument_default_normalises_and_survives_json(class_name):
    for arg in LAYER_CLASSES[class_name].ARGS:
        if arg.kind == "choice":
            assert arg.choices and all(isinstance(c, str) for c in arg.choices), arg.name
        if arg.required or arg.default is None:
            continue
        normal = normalise(arg, arg.default, class_name)
        assert normalise(arg, json.loads(json.dumps(to_json(normal))), class_name) == normal, arg.name


def analyse_in_context(layer: Layer):
    """The layer's report row in a sensible context: merges join two equal branches, other
    layers follow a starter Conv2D on the 28x28x1 image, or a Dense when they need a vector."""
    if getattr(layer, "merge", False):
        if not hasattr(analysis, "analyse_graph"):
            pytest.skip("analysis.analyse_graph is not there yet")
        report = analysis.analyse_graph(IMAGE, [Activation("relu"), Activation("relu"), layer],
                                        ((-1,), (-1,), (0, 1)))
        return report.rows[-1]
    after_conv = [build("Conv2D"), layer]  # where a dropped block usually lands: (26, 26, 32)
    row = analysis.analyse(IMAGE, after_conv).rows[-1]
    if row.status != "ok" and not layer.image_input:  # a layer for vectors: after Flatten and Dense
        row = analysis.analyse(IMAGE, [Flatten(), build("Dense"), layer]).rows[-1]
    return row


@pytest.mark.parametrize("class_name", CLASSES)
def test_starter_config_builds_and_analyses(class_name):
    row = analyse_in_context(build(class_name))
    assert row.status == "ok", row.error
    assert row.inference.derivation, "the inspector shows a worked derivation"
    assert row.inference.field is not None


@pytest.mark.parametrize("class_name", CLASSES)
@pytest.mark.parametrize("compact", [False, True])
def test_config_round_trip_through_json(class_name, compact):
    layer = build(class_name).with_name("block")
    config = json.loads(json.dumps(layer.get_config(compact=compact)))
    again = layer_from_config(class_name, config)
    assert again.get_config() == layer.get_config()
    assert again.config == layer.config


def test_classes_are_ordered_by_family_then_registration():
    ranks = [FAMILIES.index(cls.family) for cls in LAYER_CLASSES.values()]
    assert ranks == sorted(ranks)
    convs = [n for n, c in LAYER_CLASSES.items() if c.family == "convolution"]
    assert convs[:4] == ["Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose"]


def test_defining_a_class_registers_it_and_helpers_stay_out():
    class _Helper(Layer):  # no class_name of its own: a base for others, not a layer
        family = "core"

    class Tripled(_Helper):
        class_name = "TestTripled"
        explanation = "Multiplies by three (exists only in this test)."

        def _infer(self, input_shape, field):
            return Inference(input_shape, (), ("y = 3x",), field)

    try:
        assert LAYER_CLASSES["TestTripled"] is Tripled
        assert "_Helper" not in LAYER_CLASSES and "Layer" not in LAYER_CLASSES
        assert isinstance(layer_from_config("TestTripled", {}), Tripled)
        assert list(LAYER_CLASSES).index("TestTripled") > list(LAYER_CLASSES).index("Activation")  # core, later
        assert analysis.analyse(IMAGE, [Tripled()]).rows[0].status == "ok"
    finally:
        unregister("TestTripled")
    assert "TestTripled" not in LAYER_CLASSES
    with pytest.raises(ConfigError, match="unknown layer type 'TestTripled'"):
        layer_from_config("TestTripled", {})


def test_a_second_class_with_a_taken_name_is_refused():
    with pytest.raises(TypeError, match="layer class name 'Dense' is defined twice"):
        class Dense(Layer):  # noqa: F811 - the point of the test
            class_name = "Dense"
    assert LAYER_CLASSES["Dense"].__module__ == "visualcnn.engine.layers.core"


def test_an_unknown_family_is_listed_last():
    class Odd(Layer):
        class_name = "TestOdd"
        family = "experimental"

    try:
        assert list(LAYER_CLASSES)[-1] == "TestOdd"
        register(Odd)  # registering again (a module reload) keeps one entry
        assert list(LAYER_CLASSES).count("TestOdd") == 1
    finally:
        unregister("TestOdd")


def test_an_arg_of_an_unknown_kind_is_a_programming_error():
    with pytest.raises(AssertionError, match="unknown argument kind 'colour'"):
        normalise(Arg("tint", "colour", "red"), "red", "X")


def test_every_registered_class_is_importable_by_name():
    import visualcnn.engine.layers as layers_module

    for name, cls in LAYER_CLASSES.items():
        assert name in layers_module.__all__ and getattr(layers_module, name) is cls
    assert {"Input", "InputLayer", "LAYER_CLASSES", "layer_from_config", "Layer", "Arg"} <= set(layers_module.__all__)
