"""Issue 13 item 6: the measured ms per layer from the last run, in the builder cards' tooltips.

The figures are measured in the training worker when a run ends (engine.benchmark.layer_costs)
and kept by the document for the structure they were taken on. No timing values are asserted,
only that they exist, are positive and go stale on an edit."""

from __future__ import annotations

import re

from visualcnn.gui.commands import SetLayerConfigCommand
from visualcnn.gui import graph_card
from visualcnn.gui.graph_card import block_tooltip

MEASURED = re.compile(r"measured after the last run: forward ([0-9.e+-]+) ms, backward ([0-9.e+-]+) ms "
                      r"per batch of (\d+)")


def measured(text: str):
    found = MEASURED.findall(text)
    assert len(found) <= 1, text
    return tuple(map(float, found[0])) if found else None


def test_the_tooltip_line_says_forward_backward_and_the_batch(doc):
    row = doc.report.rows[0]
    assert measured(block_tooltip(row, doc.report.input_shape)) is None
    text = block_tooltip(row, doc.report.input_shape, measured=(1.08, 2.82, 64))
    assert "measured after the last run: forward 1.08 ms, backward 2.82 ms per batch of 64" in text.splitlines()


def test_a_run_in_the_window_measures_every_layer_and_an_edit_drops_the_figures(qtbot, seed_window):
    controls = seed_window.train_panel.controls
    controls.train_images.setValue(256)
    controls.batch_size.setValue(32)
    controls.epochs.setValue(1)
    document = seed_window.document
    view = seed_window.pipeline.list_widget
    assert document.layer_timings is None
    assert all(measured(view.card_tooltip(r)) is None for r in range(len(document)))
    with qtbot.waitSignal(seed_window.train_panel.run_finished, timeout=120_000):
        seed_window.train_button.click()

    timings = document.layer_timings
    assert timings is not None and timings.batch_size == 32
    assert list(timings.layers) == list(document.names)  # one entry per layer, by name
    conv = [r for r, row in enumerate(document.report.rows) if row.layer.class_name == "Conv2D"][1]
    forward, backward, batch = measured(view.card_tooltip(conv))
    assert forward > 0 and backward > 0 and batch == 32
    for r in range(len(document)):
        assert measured(view.card_tooltip(r)) is not None, document.names[r]
    # the seed CNN's first conv runs the 2x2 pool after it inside its own forward and
    # takes its weight gradient straight from the pool's gradient
    pool = document.names.index("max_pooling2d")
    assert timings.backward_in == {"max_pooling2d": "conv2d"}
    assert timings.forward_in == {"max_pooling2d": "conv2d"}
    assert "(its forward and backward run inside conv2d's, in one pass each)" in view.card_tooltip(pool)

    config = dict(document.entry(conv).config, filters=document.entry(conv).config["filters"] * 2)
    seed_window.undo_stack.push(SetLayerConfigCommand(document, conv, config))
    assert document.layer_timings is None
    assert all(measured(view.card_tooltip(r)) is None for r in range(len(document)))
    seed_window.undo_stack.undo()  # back to the structure they were measured on
    assert measured(view.card_tooltip(conv)) == (forward, backward, 32)


def test_a_pool_run_inside_the_conv_before_it_says_which_passes():
    both = graph_card.measured_line(0.0, 0.0, 64, backward_in="conv2d", forward_in="conv2d")
    assert both.endswith("\n(its forward and backward run inside conv2d's, in one pass each)")
    backward_only = graph_card.measured_line(0.05, 0.0, 64, backward_in="conv2d")  # a 3x3 / stride 2 pool
    assert backward_only.endswith("\n(its backward runs inside conv2d's, in one pass)")
    assert "\n" not in graph_card.measured_line(0.05, 0.1, 64)
