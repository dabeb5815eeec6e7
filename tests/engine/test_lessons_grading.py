"""Predict steps: the engine's answer with its derivation, and forgiving-in-form, strict-in-value grading."""

from dataclasses import replace

import pytest

from visualcnn.engine.lessons import (Action, ActionError, ModelState, Step, apply_actions, grade, parse_answer,
                                      true_answer)
from visualcnn.engine.lessons.predict import AnswerFormatError
from visualcnn.resources import preset_path


@pytest.fixture(scope="module")
def seed():
    return ModelState.from_file(preset_path("seed_cnn"))


STRIDE_2 = Step("Predict", "predict", quantity="output_shape", layer="conv2d",
                change=(Action("set_config", {"layer": "conv2d", "config": {"strides": [2, 2]}}),))


@pytest.mark.parametrize("typed", ["13x13x32", "13X13X32", "(None, 13, 13, 32)", "13, 13, 32", "13 × 13 × 32",
                                   "[13,13,32]", " 13 x 13 x 32 ", "None,13,13,32", "13 by 13 by 32", "13*13*32",
                                   "13x13x32.", "(batch, 13, 13, 32)", "13x13x32 feature maps", "１３×１３×３２",
                                   "13·13·32"])
def test_every_usual_way_of_writing_a_shape_is_read(typed):
    assert parse_answer("output_shape", typed) == (13, 13, 32)


@pytest.mark.parametrize("typed, value", [("1234", 1234), ("1,234", 1234), ("1 234", 1234), ("1_234", 1234),
                                          ("121,930", 121_930), ("3*3*1*32 + 32", 320), ("3x3x1x32+32", 320),
                                          ("3*3*1*32 + 32 = 320", 320), ("320 parameters", 320), ("(3*3*1+1)*32", 320),
                                          ("320.", 320), ("about 320 trainable parameters", 320), ("３２０", 320),
                                          ("3·3·1·32 + 32", 320)])
def test_every_usual_way_of_writing_a_count_is_read(typed, value):
    assert parse_answer("params", typed) == value


@pytest.mark.parametrize("typed, value", [("5x5", (5, 5)), ("5", (5, 5)), ("5 x 3", (5, 3)), ("(5, 5)", (5, 5)),
                                          ("5x5 pixels", (5, 5))])
def test_a_receptive_field_is_read_as_a_pair(typed, value):
    assert parse_answer("receptive_field", typed) == value


@pytest.mark.parametrize("quantity, typed, fragment", [
    ("output_shape", "", "type your prediction first"),
    ("output_shape", "thirteen", "write it like 13x13x32"),
    ("output_shape", "13.5x13x32", "write it like 13x13x32"),
    ("output_shape", "0x13x32", "a size of 0"),
    ("output_shape", "13²x32", "write it like 13x13x32"),
    ("params", "2.2M", "exact whole number"),
    ("params", "18.5k", "exact whole number"),
    ("params", "18 thousand", "exact whole number"),
    ("params", "2M", "exact whole number"),
    ("params", "lots", "write a whole number like"),
    ("params", "3**40", "write a whole number like"),
    ("params", "-5", "never negative"),
    ("receptive_field", "3x3x3", "a height and a width"),
    ("macs", "x" * 300, "too long"),
])
def test_unreadable_input_says_how_to_write_an_answer(quantity, typed, fragment):
    with pytest.raises(AnswerFormatError, match=fragment):
        parse_answer(quantity, typed)


def test_the_answer_comes_from_the_changed_model_with_the_layers_own_derivation(seed):
    answer = true_answer(STRIDE_2, seed)
    changed = apply_actions(seed, STRIDE_2.change).report().rows[0]
    assert answer.value == (None, 13, 13, 32) == changed.output_shape
    assert answer.text == "13x13x32"
    assert answer.derivation == changed.inference.derivation
    assert "out_h = floor((28 - 1*(3-1) - 1) / 2) + 1 = 13" in answer.derivation
    assert answer.before == (None, 26, 26, 32)
    assert seed.report().rows[0].output_shape == (None, 26, 26, 32)  # the model itself is not changed


def test_grading_right_wrong_and_unreadable(seed):
    right = grade(STRIDE_2, seed, "(None, 13, 13, 32)")
    assert (right.correct, right.understood) == (True, True)
    assert right.feedback == "✔ Right: conv2d outputs 13x13x32."
    assert right.derivation[-1] == "output shape = (None, 13, 13, 32)"

    wrong = grade(STRIDE_2, seed, "26x26x32")
    assert (wrong.correct, wrong.understood) == (False, True)
    assert wrong.feedback == "✘ Not quite: you wrote 26x26x32. That is the shape before the change."
    assert "13x13x32" not in wrong.feedback  # the student may try again before the reveal
    assert wrong.answer.sentence == "conv2d outputs 13x13x32"
    assert wrong.derivation == right.derivation

    unread = grade(STRIDE_2, seed, "about thirteen")
    assert (unread.correct, unread.understood) == (False, False)
    assert "write it like 13x13x32" in unread.feedback and "✘" not in unread.feedback


@pytest.mark.parametrize("typed, hint", [
    ("13x13x64", "The height and width are right; check the channels."),
    ("12x12x32", "The channels are right; work out the height and width again."),
    ("1x13x13x32", "Leave out the batch size"),
    ("13x13", "The output has 3 numbers besides the batch axis."),
])
def test_a_known_mistake_is_named(seed, typed, hint):
    g = grade(STRIDE_2, seed, typed)
    assert not g.correct and hint in g.feedback


def test_the_other_padding_or_a_forgotten_stride_is_named(seed):
    same = Step("Same", "predict", quantity="output_shape", layer="conv2d",
                change=(Action("set_config", {"layer": "conv2d", "config": {"padding": "same"}}),))
    assert grade(same, seed, "28x28x32").correct
    g = grade(same, seed, "26x26x32")  # also the shape before the change: that hint comes first
    assert g.feedback.endswith("That is the shape before the change.")
    filters = Step("Filters", "predict", quantity="output_shape", layer="conv2d",
                   change=(Action("set_config", {"layer": "conv2d", "config": {"filters": 8}}),))
    g = grade(filters, seed, "28x28x8")
    assert g.feedback.endswith("That would be the size with 'same' padding; this layer uses 'valid'.")
    both = Step("Both", "predict", quantity="output_shape", layer="conv2d",
                change=(Action("set_config", {"layer": "conv2d", "config": {"strides": [2, 2], "filters": 16}}),))
    assert grade(both, seed, "26x26x16").feedback.endswith("That would be the size with stride 1: look at the stride again.")
    assert grade(both, seed, "14x14x16").feedback.endswith("That would be the size with 'same' padding; this layer "
                                                          "uses 'valid'.")
    assert grade(both, seed, "15x15x16").feedback.endswith("work out the height and width again.")


def test_parameters_with_the_biases_forgotten(seed):
    step = Step("Count", "predict", quantity="params", layer="conv2d_1")
    assert true_answer(step, seed).value == 18_496
    assert true_answer(step, seed).derivation == ("params = 3*3*32*64 + 64 = 18,496",)
    assert grade(step, seed, "18,496").correct
    assert grade(step, seed, "3*3*32*64 + 64").correct
    forgot = grade(step, seed, "18432")
    assert not forgot.correct and "left out the biases" in forgot.feedback


def test_total_parameters_list_each_layer_and_the_sum(seed):
    step = Step("Total", "predict", quantity="total_params")
    answer = true_answer(step, seed)
    assert answer.value == seed.report().total_params == 121_930
    assert answer.derivation[-1] == "total = 320 + 18,496 + 102,464 + 650 = 121,930"
    assert "dense: params = 1600*64 + 64 = 102,464" in answer.derivation
    assert grade(step, seed, "121 930").correct and not grade(step, seed, "121,931").correct


def test_a_run_of_equal_layers_is_summed_once_with_its_count():
    from visualcnn.engine.lessons.predict import _sum_text

    assert _sum_text([160, 2320, 2320, 2320, 2320, 170]) == "160 + 4*2,320 + 170"
    assert _sum_text([5, 5, 7]) == "5 + 5 + 7"
    assert _sum_text([]) == "0"


def test_batch_normalization_counts_its_non_trainable_parameters(seed):
    step = Step("BN", "predict", quantity="params", layer="batch_normalization",
                change=(Action("insert_after", {"layer": "conv2d", "class": "BatchNormalization"}),))
    assert true_answer(step, seed).value == 128
    g = grade(step, seed, "64")
    assert not g.correct and "only the trainable ones" in g.feedback


def test_receptive_field_and_macs(seed):
    field = Step("RF", "predict", quantity="receptive_field", layer="conv2d_1")
    answer = true_answer(field, seed)
    assert answer.value == (8, 8) == tuple(seed.report().rows[2].inference.field.size)
    assert len(answer.derivation) == 3 and answer.derivation[0].startswith("conv2d: each output value sees 3x3")
    assert grade(field, seed, "8").correct and grade(field, seed, "8x8").correct
    assert not grade(field, seed, "10x10").correct

    macs = Step("MACs", "predict", quantity="macs", layer="conv2d")
    assert true_answer(macs, seed).value == 194_688
    assert true_answer(macs, seed).derivation == ("MACs = 26*26*32 * 3*3*1 = 194,688",)
    assert grade(macs, seed, "26*26*32 * 3*3*1").correct


def test_a_change_that_cannot_be_made_or_a_missing_layer_raise_one_line(seed):
    with pytest.raises(ActionError, match="no layer named 'conv2d_9'"):
        true_answer(replace(STRIDE_2, layer="conv2d_9"), seed)
    with pytest.raises(ActionError, match="no layer named 'gone'"):
        true_answer(replace(STRIDE_2, change=(Action("remove", {"layer": "gone"}),)), seed)
