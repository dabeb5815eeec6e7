"""The palette and inspector learn from the layer class: every registered class is listed,
and a layer class the GUI has never heard of (defined here, in the test only) shows up with
a neutral colour and editors for all its arguments, and the analysis accepts it."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from visualcnn.engine.analysis import analyse
from visualcnn.engine.layers import LAYER_CLASSES, Arg, Inference, Layer
from visualcnn.engine.layers.registry import unregister
from visualcnn.engine.shapes import format_shape
from visualcnn.gui.families import FAMILY_ORDER, OTHER_TITLE, UNKNOWN_COLOUR, family_colour, family_icon
from visualcnn.gui.inspector import ChoiceEditor, TextEditor
from visualcnn.gui.mime import MIME_TYPE
from visualcnn.gui.palette import CLASS_ROLE, PaletteWidget, palette_groups, palette_mime_data, starter_config


@pytest.fixture
def shift_layer():
    """A throwaway layer: one class, nothing else; removed from the registry afterwards."""

    class Shift(Layer):
        class_name = "TestShift"
        family = "experimental"  # a family no GUI file names
        explanation = "Adds a constant to every value (a layer that exists only in this test)."
        starter_config = {"offset": [-0.25, 0.25], "mode": "subtract"}
        ARGS = (
            Arg("offset", "factor", 0.5, minimum=-1, maximum=1, doc="how much to add"),
            Arg("mode", "choice", "add", choices=("add", "subtract")),
            Arg("axes", "optional_int_tuple", None, minimum=1),
            Arg("margin", "padding_2d", 0, minimum=0),
            Arg("target", "int_tuple", (1,), minimum=-1),
            Arg("reduce", "axis_list", -1),
            Arg("ceiling", "optional_float", None, minimum=0),
        )

        def _infer(self, input_shape, field):
            return Inference(tuple(input_shape), (), (f"output shape = {format_shape(input_shape)}",), field)

        def describe(self):
            return f"{self.config['mode']} {self.config['offset']}"

    yield Shift
    unregister("TestShift")


def test_every_palette_class_is_listed_once_under_its_family(qapp):
    palette = PaletteWidget()
    names = palette.class_names()
    expected = [name for name, cls in LAYER_CLASSES.items() if cls.in_palette]
    assert sorted(names) == sorted(expected) and len(names) == len(set(names))
    assert "InputLayer" not in names  # the input is the pipeline's first card
    for i in range(palette.topLevelItemCount()):
        heading = palette.topLevelItem(i)
        families = {LAYER_CLASSES[heading.child(j).data(0, CLASS_ROLE)].family for j in range(heading.childCount())}
        assert len(families) == 1 or heading.text(0) == OTHER_TITLE, heading.text(0)


def test_batch_normalization_is_in_normalization_and_headings_follow_family_order(qapp):
    groups = palette_groups()
    titles = [title for title, _family, _classes in groups]
    assert [f for _t, f, _c in groups if f in FAMILY_ORDER] == [f for f in FAMILY_ORDER if f in
                                                                [g[1] for g in groups]]
    families = {f: [c.class_name for c in classes] for _t, f, classes in groups}
    assert "BatchNormalization" in families["normalization"]
    assert "Normalization" in titles and OTHER_TITLE not in titles  # the product has no stray family


def test_merge_layers_are_in_the_palette_when_registered(qapp):
    merges = [name for name, cls in LAYER_CLASSES.items() if getattr(cls, "merge", False)]
    if not merges:
        pytest.skip("no merge layers registered yet (engine/layers/merging.py)")
    palette = PaletteWidget()
    assert set(merges) <= set(palette.class_names())
    items = palette.findItems("Add", Qt.MatchFlag.MatchExactly | Qt.MatchFlag.MatchRecursive)
    assert len(items) == 1 and "Drop it onto an arrow" in items[0].toolTip(0)
    assert "Drop it onto an arrow" not in palette.findItems("Conv2D", Qt.MatchFlag.MatchExactly
                                                            | Qt.MatchFlag.MatchRecursive)[0].toolTip(0)
    assert all(LAYER_CLASSES[name].family == "merge" for name in merges)


def test_starter_configs_come_from_the_class_and_are_fresh_copies():
    config = starter_config("Conv2D")
    assert config == {"filters": 32, "kernel_size": [3, 3], "activation": "relu"}
    config["kernel_size"].append(9)  # a dropped block's edits never reach the class
    assert LAYER_CLASSES["Conv2D"].starter_config["kernel_size"] == [3, 3]
    assert starter_config("NoSuchLayer") == {}


def test_a_new_layer_class_appears_with_no_gui_change(qapp, shift_layer):
    assert LAYER_CLASSES["TestShift"] is shift_layer
    palette = PaletteWidget()
    assert "TestShift" in palette.class_names()
    other = [palette.topLevelItem(i) for i in range(palette.topLevelItemCount())
             if palette.topLevelItem(i).text(0) == OTHER_TITLE]
    assert len(other) == 1 and other[0].child(0).text(0) == "TestShift"
    assert other[0].child(0).statusTip(0) == shift_layer.explanation
    assert family_colour("experimental").name() == UNKNOWN_COLOUR
    assert not family_icon("experimental").isNull()  # a neutral badge, not a crash
    assert b"TestShift" in bytes(palette_mime_data("TestShift").data(MIME_TYPE))


def test_a_new_layer_class_gets_an_editor_per_argument_and_is_analysed(seed_window, qtbot, shift_layer):
    window = seed_window
    lw = window.pipeline.list_widget
    lw.insert_layer(1, "TestShift", starter_config("TestShift"))
    lw.select_row(1)
    row = window.document.report.rows[1]
    assert row.status == "ok" and row.output_shape == window.document.report.rows[0].output_shape
    editors = window.inspector.editors
    assert set(editors) == {a.name for a in shift_layer.ARGS}
    assert isinstance(editors["mode"], ChoiceEditor)
    assert [editors["mode"].combo.itemText(i) for i in range(editors["mode"].combo.count())] == ["add", "subtract"]
    assert editors["mode"].combo.currentText() == "subtract"
    for name in ("offset", "axes", "margin", "target", "reduce", "ceiling"):
        assert isinstance(editors[name], TextEditor), name
    assert editors["offset"].edit.text() == "[-0.25, 0.25]"
    assert "Adds a constant" in window.inspector.explanation.text()
    assert "Other" in window.inspector.title.text()

    assert editors["margin"].edit.text() == "0"  # as Keras writes the default, not [[0, 0], [0, 0]]
    editors["margin"].edit.clear()
    qtbot.keyClicks(editors["margin"].edit, "[1, [2, 3]]")
    assert window.document.entry(1).config["margin"] == [1, [2, 3]]  # as typed; the engine normalises
    assert editors["margin"].edit.text() == "[1, [2, 3]]"  # what the student typed stays
    window.undo_stack.undo()
    assert editors["margin"].edit.text() == "0"
    window.undo_stack.redo()
    assert editors["margin"].edit.text() == "[1, [2, 3]]"
    editors["mode"].combo.setCurrentText("add")
    assert "mode" not in window.document.entry(1).config  # the default is not written
    layer = shift_layer.from_config(window.document.entry(1).config)
    report = analyse((28, 28, 1), [layer])
    assert report.rows[0].status == "ok" and report.rows[0].output_shape == (None, 28, 28, 1)
    assert layer.config["margin"] == ((1, 1), (2, 3)) and layer.get_config()["margin"] == [[1, 1], [2, 3]]


def test_a_text_editor_shows_the_engine_message_in_place_and_pushes_nothing(seed_window, qtbot, shift_layer):
    window = seed_window
    lw = window.pipeline.list_widget
    lw.insert_layer(1, "TestShift", starter_config("TestShift"))
    lw.select_row(1)
    editor = window.inspector.editors["offset"]
    qtbot.waitUntil(editor.isVisible)  # a layout shows new children from the event loop
    count = window.undo_stack.count()
    editor.edit.clear()
    qtbot.keyClicks(editor.edit, "[0.1, 2]")
    assert editor.error == "expected each value <= 1, received [0.1, 2]"
    assert editor.hint.isVisibleTo(window.inspector) and window.undo_stack.count() == count
    editor.edit.clear()
    qtbot.keyClicks(editor.edit, "[0.1")
    assert editor.error.startswith("cannot read '[0.1'")
    qtbot.keyClicks(editor.edit, ", 0.2]")
    assert editor.error == "" and not editor.hint.isVisibleTo(window.inspector)
    assert window.document.entry(1).config["offset"] == [0.1, 0.2]
    window.undo_stack.undo()
    assert editor.edit.text() == "[-0.25, 0.25]"  # the document's value comes back into the editor
