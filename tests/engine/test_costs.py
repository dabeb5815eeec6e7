"""Costs on every block (issue 13 item 6): multiply-adds (MACs) and activation memory per
image, as each layer's own knowledge (Layer._macs), with the worked line a student reads.

The expected numbers are computed by hand (or by brute force over the loops of the
textbook definition), never from the code under test."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys

import pytest

from visualcnn.engine import layers as L
from visualcnn.engine import load_model_file
from visualcnn.engine.analysis import analyse, analyse_graph
from visualcnn.engine.layers import LAYER_CLASSES
from visualcnn.engine.summary import render_costs, render_summary
from visualcnn.resources import preset_dir


def costs(layer, input_shape):
    inference = layer.infer((None, *input_shape))
    return inference.macs, inference.macs_line


def brute_force_conv_macs(h, w, cin, kh, kw, filters, stride, padding):
    """Counts the multiplies of the textbook loop: every output cell, every tap whose input
    pixel is inside the padded image (padding zeros are multiplied too, as every library
    does), every input channel."""
    if padding == "valid":
        oh, ow = (h - kh) // stride + 1, (w - kw) // stride + 1
    else:
        oh, ow = -(-h // stride), -(-w // stride)
    count = 0
    for _ in itertools.product(range(oh), range(ow), range(filters)):
        count += kh * kw * cin
    return count


def test_conv2d_example_from_the_issue():
    macs, line = costs(L.Conv2D(32, 3), (28, 28, 1))
    assert macs == 26 * 26 * 32 * 3 * 3 * 1 == 194_688
    assert line == "MACs = 26*26*32 * 3*3*1 = 194,688"


@pytest.mark.parametrize("h,w,cin,k,filters,stride,padding", [
    (28, 28, 1, 3, 32, 1, "valid"), (15, 15, 3, 5, 8, 2, "same"), (13, 11, 4, 3, 6, 2, "valid"),
])
def test_conv2d_macs_equal_the_textbook_loop(h, w, cin, k, filters, stride, padding):
    macs, _ = costs(L.Conv2D(filters, k, strides=stride, padding=padding), (h, w, cin))
    assert macs == brute_force_conv_macs(h, w, cin, k, k, filters, stride, padding)


def test_conv2d_by_hand_stride_2_same():
    # 15x15x3 -> 'same', stride 2 -> 8x8x8; each output reads 5*5*3 values
    macs, line = costs(L.Conv2D(8, 5, strides=2, padding="same"), (15, 15, 3))
    assert macs == 8 * 8 * 8 * 75 == 38_400
    assert line == "MACs = 8*8*8 * 5*5*3 = 38,400"


def test_depthwise_conv2d():
    # 14x14x16, 3x3 'same', depth_multiplier 2 -> 14x14x32; each output reads 9 values of ONE channel
    macs, line = costs(L.DepthwiseConv2D(3, padding="same", depth_multiplier=2), (14, 14, 16))
    assert macs == 14 * 14 * 32 * 9 == 56_448
    assert line.startswith("MACs = 14*14*32 * 3*3 = 56,448")


def test_separable_conv2d_is_depthwise_plus_pointwise():
    # 14x14x16, 3x3 valid -> 12x12; depthwise 12*12*16*9, pointwise 12*12*32*16
    macs, line = costs(L.SeparableConv2D(32, 3), (14, 14, 16))
    assert macs == 20_736 + 73_728 == 94_464
    assert line.startswith("MACs = 12*12*16 * 3*3 + 12*12*32 * 16 = 94,464")
    # cheaper than the Conv2D it replaces, by the textbook ratio 1/filters + 1/(k*k)
    conv, _ = costs(L.Conv2D(32, 3), (14, 14, 16))
    assert macs / conv == pytest.approx(1 / 32 + 1 / 9)


def test_conv2d_transpose_counts_every_input_value_through_the_kernel():
    # 7x7x16 -> stride 2 'same' -> 14x14x8: each of the 7*7*16 inputs is multiplied by 3*3*8 weights
    layer = L.Conv2DTranspose(8, 3, strides=2, padding="same")
    macs, line = costs(layer, (7, 7, 16))
    assert macs == 7 * 7 * 16 * 9 * 8 == 56_448
    assert line.startswith("MACs = 7*7*16 * 3*3*8 = 56,448")
    # the same count as the Conv2D whose gradient it is (14x14x8 -> stride 2 -> 7x7x16)
    forward, _ = costs(L.Conv2D(16, 3, strides=2, padding="same"), (14, 14, 8))
    assert macs == forward


def test_dense():
    macs, line = costs(L.Dense(64), (1600,))
    assert (macs, line) == (102_400, "MACs = 1600*64 = 102,400")
    # on a sequence: every position has its own units
    macs, line = costs(L.Dense(4), (5, 12))
    assert (macs, line) == (240, "MACs = 5 * 12*4 = 240")


def test_bias_and_activation_are_not_counted():
    with_all, _ = costs(L.Conv2D(8, 3, activation="relu"), (10, 10, 2))
    bare, _ = costs(L.Conv2D(8, 3, use_bias=False), (10, 10, 2))
    assert with_all == bare == 8 * 8 * 8 * 9 * 2


def test_pooling():
    macs, line = costs(L.MaxPooling2D(2), (26, 26, 32))
    assert macs == 13 * 13 * 32 * 4 == 21_632
    assert line == "MACs = 13*13*32 * 2*2 = 21,632 (one comparison per window value)"
    # 3x3 windows, stride 2, 'same': 14x14 -> 7x7
    macs, line = costs(L.AveragePooling2D(3, strides=2, padding="same"), (14, 14, 8))
    assert macs == 7 * 7 * 8 * 9 == 3_528
    assert "addition" in line
    assert costs(L.GlobalAveragePooling2D(), (4, 4, 64))[0] == 1_024
    assert costs(L.GlobalMaxPooling2D(keepdims=True), (3, 5, 2))[0] == 30


def test_elementwise_and_merges():
    assert costs(L.ReLU(), (4, 4, 8))[0] == 128
    assert costs(L.BatchNormalization(), (4, 4, 8))[0] == 128
    assert costs(L.Activation("linear"), (4, 4, 8))[0] == 0
    assert costs(L.Dropout(0.5), (64,))[0] == 0  # identity when predicting
    assert costs(L.Flatten(), (5, 5, 64))[0] == 0
    assert costs(L.UpSampling2D(2), (4, 4, 3))[0] == 0
    assert costs(L.UpSampling2D(2, interpolation="bilinear"), (4, 4, 3))[0] == 8 * 8 * 3 * 4
    three = L.Add().infer([(None, 7, 7, 4)] * 3)
    assert (three.macs, three.macs_line) == (2 * 196, "MACs = (3 - 1) * 7*7*4 = 392 (one addition per value)")
    assert L.Average().infer([(None, 10)] * 2).macs == 20
    assert L.Concatenate().infer([(None, 7, 7, 4), (None, 7, 7, 2)]).macs == 0


def test_frozen_layer_keeps_its_costs():
    layer = L.Conv2D(8, 3, trainable=False)
    inference = layer.infer((None, 10, 10, 2))
    assert inference.trainable_params == 0 and inference.macs == 8 * 8 * 8 * 9 * 2


@pytest.mark.parametrize("name", sorted(LAYER_CLASSES))
def test_every_layer_class_has_a_worked_macs_line(name):
    """All 40 classes: a line 'MACs = ... = N' whose N is the count, and the activation
    memory = output values * 4 bytes."""
    cls = LAYER_CLASSES[name]
    layer = cls(**cls.starter_config)
    if cls.merge:
        inference = layer.infer([(None, 8, 8, 4), (None, 8, 8, 4)])
    else:
        inference = layer.infer((None, 8, 8, 4))
    assert inference.macs >= 0
    match = re.match(r"MACs = (?:.* = )?([\d,]+)(?: .*)?$", inference.macs_line)
    assert match, inference.macs_line
    assert int(match.group(1).replace(",", "")) == inference.macs
    values = 1
    for d in inference.output_shape[1:]:
        values *= d
    assert inference.activation_bytes == 4 * values
    assert inference.activation_line.endswith(f"= {4 * values:,} B")


def seed_cnn():
    return load_model_file(preset_dir() / "seed_cnn.json").model


def test_seed_cnn_totals_equal_a_hand_computation():
    report = seed_cnn().checked_report()
    by_hand = {
        "conv2d": 26 * 26 * 32 * 9,             # 194,688
        "max_pooling2d": 13 * 13 * 32 * 4,      # 21,632
        "conv2d_1": 11 * 11 * 64 * 9 * 32,      # 2,230,272
        "max_pooling2d_1": 5 * 5 * 64 * 4,      # 6,400
        "flatten": 0,
        "dense": 1600 * 64,                     # 102,400
        "dropout": 0,
        "dense_1": 64 * 10,                     # 640
    }
    assert {r.name: r.macs for r in report.rows} == by_hand
    assert report.total_macs == 2_556_032
    outputs = 26 * 26 * 32 + 13 * 13 * 32 + 11 * 11 * 64 + 5 * 5 * 64 + 1600 + 64 + 64 + 10
    assert report.total_activation_bytes == 4 * outputs == 152_488
    assert report.rows[0].activation_bytes == 86_528


def test_weighted_layers_agree_with_the_benchmarks_flop_count():
    """benchmark.model_flops counts the weight layers' work (2 FLOPs per multiply-add)
    its own way; the two must agree on every preset."""
    from visualcnn.engine.benchmark import model_flops

    for preset in ("seed_cnn", "lenet5", "resnet_mnist", "inception_mnist", "vgg_mnist"):
        model = load_model_file(preset_dir() / f"{preset}.json").model
        report = model.checked_report()
        weighted = sum(r.macs for r in report.rows
                       if any(w.name.endswith("kernel") for w in r.inference.weights))
        assert model_flops(model, 1)[0] == 2 * weighted, preset


def test_graph_report_has_costs_per_row():
    layers = [L.Conv2D(4, 3, padding="same", name="a"), L.Conv2D(4, 3, padding="same", name="b"),
              L.Add(name="add"), L.Flatten(name="f"), L.Dense(2, name="out")]
    report = analyse_graph((6, 6, 1), layers, [(-1,), (0,), (0, 1), (2,), (3,)])
    assert [r.macs for r in report.rows] == [6 * 6 * 4 * 9, 6 * 6 * 4 * 36, 6 * 6 * 4, 0, 144 * 2]
    assert report.total_macs == 1296 + 5184 + 144 + 288


def test_rows_with_errors_count_nothing():
    report = analyse((3, 3, 1), [L.Conv2D(4, 5), L.Flatten()])
    assert not report.ok and report.total_macs == 0 and report.total_activation_bytes == 0


def test_keras_summary_text_is_unchanged_and_costs_are_a_separate_view():
    from tests.test_cli_summary import SEED_TABLE

    model = seed_cnn()
    assert render_summary(model.name, model.checked_report(), 76) + "\n" == SEED_TABLE
    text = render_costs(model.name, model.checked_report(), 108)
    assert "26*26*32 * 3*3*1 = 194,688" in text
    assert " Total MACs: 2,556,032 per image (2.56 M multiply-adds)" in text.splitlines()
    assert " Activation memory: 152,488 B per image (148.91 KB, every layer's output once)" in text.splitlines()


def test_summarize_dict_has_the_costs():
    from visualcnn.engine import summarize

    data = summarize(seed_cnn())
    assert data["total_macs"] == 2_556_032 and data["total_activation_bytes"] == 152_488
    first = data["layers"][0]
    assert first["macs"] == 194_688 and first["macs_derivation"] == "MACs = 26*26*32 * 3*3*1 = 194,688"
    assert first["activation_bytes"] == 86_528
    assert first["activation_derivation"] == "activations = 26*26*32 * 4 B = 86,528 B"


def test_cli_costs_option_prints_keras_table_then_costs():
    import os

    from tests.test_cli_summary import SEED_TABLE

    env = {**os.environ, "COLUMNS": "80"}
    result = subprocess.run([sys.executable, "-m", "visualcnn", "summary", "--costs",
                             str(preset_dir() / "seed_cnn.json")], capture_output=True, text=True,
                            timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(SEED_TABLE)
    rest = result.stdout[len(SEED_TABLE):]
    assert rest.startswith('\nCosts per image: "seed_cnn"\n')
    assert "Total MACs: 2,556,032 per image" in rest
