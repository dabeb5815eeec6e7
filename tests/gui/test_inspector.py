"""The inspector: fitting editors, Keras defaults, two-way binding, derivation with numbers."""

from __future__ import annotations

from PySide6.QtWidgets import QCheckBox, QComboBox

from visualcnn.engine.layers import LAYER_CLASSES, Arg
from visualcnn.engine.layers.arguments import normalise
from visualcnn.gui import commands
from visualcnn.gui.inspector import (BoolEditor, ChoiceEditor, FloatEditor, InitializerEditor, IntEditor,
                                     OptionalPairEditor, PairEditor, SeedEditor, TextEditor, check_text,
                                     format_value, make_editor, parse_text)
from visualcnn.gui.palette import starter_config

# The widget per argument kind; every other kind (factor, int_tuple, padding_2d, axis_list,
# optional_float, optional_int_tuple, and any kind added later) gets the checked line edit.
WIDGET_BY_KIND = {"int": IntEditor, "axis": IntEditor, "seed": SeedEditor, "pair": PairEditor,
                  "optional_pair": OptionalPairEditor, "padding": ChoiceEditor, "activation": ChoiceEditor,
                  "choice": ChoiceEditor, "initializer": InitializerEditor, "bool": BoolEditor,
                  "float": FloatEditor}


def shapes(window):
    return [r.output_shape for r in window.document.report.rows]


def test_editors_fit_the_argument_kinds(seed_window):
    editors = seed_window.inspector.editors
    assert isinstance(editors["kernel_size"], PairEditor)
    assert isinstance(editors["padding"].combo, QComboBox)
    assert editors["activation"].combo.currentText() == "relu"
    assert isinstance(editors["use_bias"].check, QCheckBox) and editors["use_bias"].check.isChecked()
    assert editors["strides"].height_spin.value() == 1  # the Keras default, shown
    assert "Slides small learned filters" in seed_window.inspector.explanation.text()
    seed_window.pipeline.list_widget.select_row(1)
    assert isinstance(seed_window.inspector.editors["strides"], OptionalPairEditor)
    seed_window.pipeline.list_widget.select_row(6)
    assert isinstance(seed_window.inspector.editors["rate"], FloatEditor)


def test_derivation_has_the_numbers_filled_in(seed_window):
    text = seed_window.inspector.derivation.text()
    assert "out_h = floor((28 - 1*(3-1) - 1) / 1) + 1 = 26" in text
    assert "params = 3*3*1*32 + 32 = 320" in text
    assert "each output value sees 3x3 input pixels" in text


def test_kernel_edit_updates_downstream_shapes_and_totals_at_once(seed_window, qtbot):
    editor = seed_window.inspector.editors["kernel_size"]
    with qtbot.waitSignal(seed_window.document.report_updated, timeout=1000):
        editor.height_spin.setValue(5)
    assert seed_window.document.entry(0).config["kernel_size"] == [5, 5]  # linked pair
    assert shapes(seed_window)[:5] == [(None, 24, 24, 32), (None, 12, 12, 32), (None, 10, 10, 64),
                                       (None, 5, 5, 64), (None, 1600)]
    assert seed_window.document.report.total_params == 121_930 - 320 + 5 * 5 * 32 + 32
    assert "params = 5*5*1*32 + 32 = 832" in seed_window.inspector.derivation.text()
    assert seed_window.summary.cell_texts()[0] == ("conv2d (Conv2D)", "(None, 24, 24, 32)", "832")


def test_unlinked_pair_sets_height_and_width_separately(seed_window):
    editor = seed_window.inspector.editors["kernel_size"]
    editor.link.setChecked(False)
    editor.width_spin.setValue(5)
    assert seed_window.document.entry(0).config["kernel_size"] == [3, 5]
    assert shapes(seed_window)[0] == (None, 26, 24, 32)


def test_impossible_kernel_turns_red_with_reason_disables_train_and_undo_restores(seed_window, monkeypatch):
    monkeypatch.setattr(commands, "MERGE_SECONDS", -1.0)  # two deliberate edits, two undo steps
    before = [(r.output_shape, r.params) for r in seed_window.document.report.rows]
    editor = seed_window.inspector.editors["kernel_size"]
    editor.height_spin.setValue(5)
    after_5 = [(r.output_shape, r.params) for r in seed_window.document.report.rows]
    editor.height_spin.setValue(40)

    reason = "kernel 40x40 does not fit the 28x28 input with valid padding"
    rows = seed_window.document.report.rows
    assert rows[0].status == "error" and reason in rows[0].error
    assert all(r.status == "unknown" for r in rows[1:])
    assert not seed_window.train_button.isEnabled()
    assert reason in seed_window.train_status.text()
    assert reason in seed_window.train_button.toolTip()
    assert seed_window.inspector.error_label.isVisibleTo(seed_window.inspector)
    assert reason in seed_window.inspector.error_label.text()
    assert seed_window.summary.cell_texts()[1][1] == "?"

    seed_window.undo_action.trigger()
    assert [(r.output_shape, r.params) for r in seed_window.document.report.rows] == after_5
    seed_window.undo_action.trigger()
    assert [(r.output_shape, r.params) for r in seed_window.document.report.rows] == before
    assert editor.height_spin.value() == 3 and editor.width_spin.value() == 3
    assert seed_window.train_button.isEnabled()
    assert not seed_window.is_modified


def test_rejected_config_is_shown_in_red_not_raised(seed_window):
    editors = seed_window.inspector.editors
    editors["strides"].height_spin.setValue(2)
    editors["dilation_rate"].height_spin.setValue(2)
    row = seed_window.document.report.rows[0]
    assert row.status == "error" and "cannot be combined with dilation_rate" in row.error
    assert "cannot be combined" in seed_window.inspector.error_label.text()
    assert not seed_window.train_button.isEnabled()


def test_default_values_are_not_written_into_the_config(seed_window):
    seed_window.inspector.editors["padding"].combo.setCurrentText("same")
    assert seed_window.document.entry(0).config["padding"] == "same"
    seed_window.inspector.editors["padding"].combo.setCurrentText("valid")
    assert "padding" not in seed_window.document.entry(0).config


def test_float_is_validated_as_you_type(seed_window, qtbot):
    seed_window.pipeline.list_widget.select_row(6)
    editor = seed_window.inspector.editors["rate"]
    assert editor.edit.text() == "0.5"
    count = seed_window.undo_stack.count()
    qtbot.keyClicks(editor.edit, "x")  # "0.5x"
    assert editor.hint.text() and seed_window.undo_stack.count() == count
    editor.edit.clear()
    qtbot.keyClicks(editor.edit, "1.5")
    error = seed_window.document.report.rows[6].error
    assert "argument 'rate' expected >= 0 and < 1, received 1.5" in error
    assert not seed_window.train_button.isEnabled()
    editor.edit.clear()
    qtbot.keyClicks(editor.edit, "0.3")
    assert seed_window.document.entry(6).config["rate"] == 0.3
    assert seed_window.train_button.isEnabled()


def test_document_changes_update_the_editors_without_pushing(seed_window):
    seed_window.inspector.editors["filters"].spin.setValue(16)
    assert seed_window.undo_stack.count() == 1
    seed_window.undo_stack.undo()
    assert seed_window.inspector.editors["filters"].spin.value() == 32
    assert seed_window.undo_stack.count() == 1 and seed_window.undo_stack.index() == 0


# --- editors chosen by argument kind alone: a new layer needs no inspector change -----------


def test_every_registered_argument_gets_the_editor_of_its_kind(qapp):
    for class_name, cls in LAYER_CLASSES.items():
        for arg in cls.ARGS:
            editor = make_editor(arg)
            assert type(editor) is WIDGET_BY_KIND.get(arg.kind, TextEditor), (class_name, arg.name)
            if arg.kind == "choice":
                assert [editor.combo.itemText(i) for i in range(editor.combo.count())] == list(arg.choices)


def test_every_registered_layer_shows_its_starter_values_without_complaint(seed_window, qtbot):
    lw = seed_window.pipeline.list_widget
    for class_name, cls in LAYER_CLASSES.items():
        if not cls.in_palette:
            continue
        lw.insert_layer(1, class_name, starter_config(class_name))
        lw.select_row(1)
        editors = seed_window.inspector.editors
        assert set(editors) == {a.name for a in cls.ARGS}, class_name
        config = seed_window.document.entry(1).config
        for arg in cls.ARGS:
            editor = editors[arg.name]
            if isinstance(editor, TextEditor):
                assert editor.error == "", (class_name, arg.name)
                value = config.get(arg.name, arg.default)
                expected = None if value is None else normalise(arg, value, "")
                assert check_text(arg, editor.edit.text()) == (expected, ""), (class_name, arg.name)
        seed_window.undo_stack.undo()


def test_text_is_parsed_as_literals_only():
    assert parse_text(" [-0.2, 0.3] ") == [-0.2, 0.3]
    assert parse_text("(1, 2)") == [1, 2] and parse_text("3, 3") == [3, 3]
    assert parse_text("[[1, 2], [3, 4]]") == [[1, 2], [3, 4]]
    assert parse_text("") is None and parse_text("None") is None and parse_text("null") is None
    value, message = check_text(Arg("f", "factor", 0.1), "__import__('os')")
    assert value is None and message.startswith("cannot read")


def test_values_are_shown_as_typed():
    assert format_value(((1, 1), (2, 3))) == "[[1, 1], [2, 3]]"
    assert format_value((-0.2, 0.3)) == "[-0.2, 0.3]" and format_value(0.25) == "0.25"
    assert format_value(None) == "None" and format_value(-1) == "-1"


def test_text_editor_reports_the_engine_reason():
    arg = Arg("target_shape", "int_tuple", minimum=-1)
    assert check_text(arg, "[7, 7, 1]") == ((7, 7, 1), "")
    assert check_text(arg, "[7, -2]") == (None, "expected each value >= -1, received [7, -2]")
    assert check_text(Arg("max_value", "optional_float", None, minimum=0), "") == (None, "")


def test_a_merge_derivation_shows_every_input_shape():
    from visualcnn.engine.analysis import analyse_graph
    from visualcnn.engine.layers import Add, Conv2D, MaxPooling2D
    from visualcnn.gui.inspector import derivation_lines

    layers = [Conv2D(32, 3, name="c"), MaxPooling2D(2, name="p"), Conv2D(32, 3, name="c2"), Add(name="add")]
    report = analyse_graph((28, 28, 1), layers, ((-1,), (0,), (1,), (1, 2)))
    lines = derivation_lines(report.rows[3])
    assert lines[:2] == ["input 1 = (None, 13, 13, 32)", "input 2 = (None, 11, 11, 32)"]
    assert report.rows[3].status == "error"
