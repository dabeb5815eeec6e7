"""analyse_graph: shapes, derivations, receptive fields and every error of a layer graph."""

import pytest

from visualcnn.engine import layers as L
from visualcnn.engine.analysis import analyse, analyse_graph, linear_inbound
from visualcnn.engine.layers import ConfigError


def residual():
    layers = [L.Conv2D(32, 3, name="conv2d"), L.Conv2D(32, 3, padding="same", name="conv2d_1"),
              L.Add(name="add"), L.Flatten(name="flatten"), L.Dense(10, name="dense")]
    return layers, ((-1,), (0,), (0, 1), (2,), (3,))


def test_residual_shapes_params_and_derivation():
    layers, inbound = residual()
    report = analyse_graph((28, 28, 1), layers, inbound)
    assert report.ok and not report.is_linear
    assert [r.output_shape for r in report.rows] == [(None, 26, 26, 32)] * 3 + [(None, 21632), (None, 10)]
    add = report.rows[2]
    assert add.inbound == (0, 1) and add.input_shapes == ((None, 26, 26, 32), (None, 26, 26, 32))
    assert add.input_shape == (None, 26, 26, 32)
    assert add.inference.derivation[0] == "Add: (26, 26, 32) + (26, 26, 32) -> (26, 26, 32)"
    assert report.total_params == 320 + 9248 + 21632 * 10 + 10
    assert report.consumers(-1) == (0,) and report.consumers(0) == (1, 2) and report.consumers(4) == ()
    assert report.inbound == inbound and report.output_shape == (None, 10)


def test_concatenate_channels_derivation_and_shape():
    layers = [L.Conv2D(32, 3, padding="same", name="a"), L.Conv2D(64, 1, name="b"), L.Concatenate(name="cat")]
    report = analyse_graph((28, 28, 1), layers, ((-1,), (-1,), (0, 1)))
    assert report.ok
    assert report.rows[2].output_shape == (None, 28, 28, 96)
    assert report.rows[2].inference.derivation[0] == "Concatenate: channels 32 + 64 = 96"


def test_multi_branch_three_way_concat_and_average():
    layers = [L.Conv2D(8, 1, name="b1"), L.Conv2D(8, 3, padding="same", name="b2"),
              L.MaxPooling2D(3, strides=1, padding="same", name="b3"), L.Concatenate(name="cat"),
              L.Conv2D(8, 1, name="proj"), L.Average(name="avg")]
    report = analyse_graph((16, 16, 8), layers, ((-1,), (-1,), (-1,), (0, 1, 2), (3,), (0, 1, 4)))
    assert report.ok
    assert report.rows[3].inference.derivation[0] == "Concatenate: channels 8 + 8 + 8 = 24"
    assert report.rows[5].output_shape == (None, 16, 16, 8)
    assert report.rows[5].inference.derivation[0] == \
        "Average: ((16, 16, 8) + (16, 16, 8) + (16, 16, 8)) / 3 -> (16, 16, 8)"
    assert report.consumers(-1) == (0, 1, 2) and report.consumers(0) == (3, 5)


def test_receptive_field_at_a_merge_is_the_largest_with_its_jump():
    # branch a: 3x3 then 2x2 pool (field 4, jump 2); branch b: a 5x5 stride-2 conv (field 5, jump 2)
    layers = [L.Conv2D(4, 3, padding="same", name="a"), L.MaxPooling2D(2, name="pool"),
              L.Conv2D(4, 5, strides=2, padding="same", name="b"), L.Add(name="add")]
    report = analyse_graph((16, 16, 1), layers, ((-1,), (0,), (-1,), (1, 2)))
    assert report.ok
    pool, wide, add = report.rows[1].inference.field, report.rows[2].inference.field, report.rows[3].inference.field
    assert pool.size == (4, 4) and wide.size == (5, 5)
    assert add == wide and add.jump == (2, 2)


def test_merge_mismatch_names_both_inputs_and_shapes_then_unknown_downstream():
    layers = [L.Conv2D(32, 3, name="conv2d"), L.Conv2D(32, 5, name="conv2d_1"), L.Add(name="add"),
              L.Flatten(name="flatten"), L.Dense(10, name="dense")]
    report = analyse_graph((15, 15, 1), layers, ((-1,), (-1,), (0, 1), (2,), (3,)))
    add = report.rows[2]
    assert add.status == "error" and add.inference is None
    assert add.error.startswith("Add 'add': inputs must have the same shape: 'conv2d' gives (None, 13, 13, 32) "
                                "but 'conv2d_1' gives (None, 11, 11, 32); ")
    assert [r.status for r in report.rows[3:]] == ["unknown", "unknown"]
    assert report.error == add.error
    with pytest.raises(ConfigError, match="inputs must have the same shape"):
        report.raise_for_error()


def test_merge_mismatch_of_the_third_input_names_the_clashing_earlier_input():
    layers = [L.Dense(4, name="d4"), L.Dense(1, name="d1"), L.Dense(5, name="d5"), L.Multiply(name="mul")]
    report = analyse_graph((3,), layers, ((-1,), (-1,), (-1,), (0, 1, 2)))
    assert "'d4' gives (None, 4) but 'd5' gives (None, 5)" in report.rows[3].error


def test_broadcasting_follows_keras():
    layers = [L.Conv2D(8, 3, padding="same", name="c"), L.GlobalAveragePooling2D(keepdims=True, name="g"),
              L.Multiply(name="gate"), L.GlobalAveragePooling2D(name="flat"), L.Add(name="add")]
    report = analyse_graph((6, 6, 3), layers, ((-1,), (0,), (0, 1), (2,), (2, 3)))
    assert report.ok
    # (6, 6, 8) * (1, 1, 8) -> (6, 6, 8); (6, 6, 8) + (8,) -> (6, 6, 8) (the lower rank aligns on the last axis)
    assert report.rows[2].output_shape == (None, 6, 6, 8)
    assert report.rows[4].output_shape == (None, 6, 6, 8)
    assert report.rows[4].inference.derivation[0] == "Add: (6, 6, 8) + (8,) -> (6, 6, 8)"


def test_concatenate_errors():
    wrong_size = [L.Conv2D(4, 3, name="a"), L.Conv2D(4, 1, name="b"), L.Concatenate(name="cat")]
    report = analyse_graph((8, 8, 1), wrong_size, ((-1,), (-1,), (0, 1)))
    assert report.rows[2].error == (
        "Concatenate 'cat': inputs must have the same shape except along the joined axis (channels): "
        "'a' gives (None, 6, 6, 4) but 'b' gives (None, 8, 8, 4); make the branches agree (padding='same' keeps "
        "the size)")
    ranks = [L.Conv2D(4, 3, name="a"), L.Flatten(name="f"), L.Concatenate(name="cat")]
    report = analyse_graph((8, 8, 1), ranks, ((-1,), (0,), (0, 1)))
    assert "inputs must have the same number of axes: 'a' gives (None, 6, 6, 4) but 'f' gives (None, 144)" \
        in report.rows[2].error
    axis = [L.Dense(3, name="a"), L.Dense(4, name="b"), L.Concatenate(axis=2, name="cat")]
    report = analyse_graph((5,), axis, ((-1,), (-1,), (0, 1)))
    assert report.rows[2].error.startswith("Concatenate 'cat': axis 2 does not exist for inputs shaped (None, 3)")


def test_subtract_takes_exactly_two_inputs():
    layers = [L.Dense(3, name="a"), L.Dense(3, name="b"), L.Dense(3, name="c"), L.Subtract(name="sub")]
    report = analyse_graph((5,), layers, ((-1,), (-1,), (-1,), (0, 1, 2)))
    assert report.rows[3].error == "Subtract 'sub': takes exactly 2 inputs, received 3; connect exactly 2 blocks to it"
    ok = analyse_graph((5,), layers[:2] + [layers[3]], ((-1,), (-1,), (0, 1)))
    assert ok.ok and ok.rows[2].inference.derivation[0] == "Subtract: (3,) - (3,) -> (3,)"


def test_a_one_input_layer_with_two_inputs_is_an_error():
    layers = [L.Conv2D(4, 3, name="a"), L.Dense(3, name="b"), L.Dense(3, name="c")]
    report = analyse_graph((28, 28, 1), layers, ((-1,), (-1, 0), (1,)))
    assert report.rows[1].error == ("Dense 'b': has 2 inputs ('input_layer', 'a') but takes one; "
                                    "use Add or Concatenate to join branches")
    assert report.rows[2].status == "unknown"


def test_an_unused_output_is_an_error_on_that_block_and_keeps_its_shape():
    layers = [L.Conv2D(4, 3, name="a"), L.Conv2D(4, 3, name="dangling"), L.Flatten(name="f")]
    report = analyse_graph((8, 8, 1), layers, ((-1,), (0,), (0,)))
    row = report.rows[1]
    assert row.status == "error" and row.output_shape == (None, 4, 4, 4)
    assert row.error == "Conv2D 'dangling': its output is not used: connect it to another block or delete it"
    assert report.rows[2].status == "ok" and not report.ok


def test_links_to_later_or_missing_blocks_and_no_input_are_errors():
    layers = [L.Dense(3, name="a"), L.Dense(3, name="b")]
    later = analyse_graph((5,), layers, ((1,), (0,)))
    assert later.rows[0].error == ("Dense 'a': takes its input from 'b', which comes after it; "
                                   "a block can only use blocks above it")
    assert later.rows[1].status == "unknown"
    missing = analyse_graph((5,), layers, ((-1,), (7,)))
    assert missing.rows[1].error == "Dense 'b': takes its input from a block that does not exist (#7)"
    empty = analyse_graph((5,), layers, ((-1,), ()))
    assert empty.rows[1].error == "Dense 'b': has no input: connect a block (or the input) to it"
    with pytest.raises(ConfigError, match="2 layers but 1 inbound"):
        analyse_graph((5,), layers, ((-1,),))


def test_the_input_name_appears_in_messages():
    layers = [L.Dense(3, name="a"), L.Dense(3, name="b")]
    report = analyse_graph((5,), layers, ((-1,), (-1, 0)), input_name="pixels")
    assert "('pixels', 'a')" in report.rows[1].error and report.input_name == "pixels"


def test_analyse_is_the_linear_case():
    layers = [L.Conv2D(4, 3), L.MaxPooling2D(), L.Flatten(), L.Dense(10)]
    linear = analyse((28, 28, 1), layers)
    graph = analyse_graph((28, 28, 1), layers, linear_inbound(4))
    assert linear.is_linear and linear.inbound == ((-1,), (0,), (1,), (2,))
    assert linear == graph
    assert [r.input_shapes for r in linear.rows][1] == ((None, 26, 26, 4),)


def test_linear_error_rows_as_before():
    report = analyse((4, 4, 1), [L.Conv2D(4, 5), L.Flatten()])
    assert [r.status for r in report.rows] == ["error", "unknown"]
    assert report.rows[1].input_shape is None and report.rows[1].input_shapes == (None,)
