"""Words explained in place: the glossary's sentences in the tooltips of the window's technical words."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from visualcnn.engine.glossary import term
from visualcnn.gui.glossary_tips import (ARG_TERMS, SETTING_TERMS, SUMMARY_HEADER_TERMS, WRAP, entry, explain,
                                         explained)


def flat(text: str) -> str:
    """A tooltip with its wrapping undone, to look for a glossary sentence in it."""
    return " ".join(text.split())


def has(tooltip: str, name: str) -> bool:
    return term(name) in flat(tooltip)


def test_every_word_the_window_explains_is_in_the_glossary():
    names = [n for group in (*ARG_TERMS.values(), *SETTING_TERMS.values(), *SUMMARY_HEADER_TERMS.values())
             for n in group]
    names += ["None", "receptive field", "MACs", "non-trainable parameters", "loss", "cross-entropy", "epoch",
              "batch", "softmax", "logits", "valid", "same", "stride", "accuracy", "validation"]
    for name in names:
        assert term(name)  # KeyError names a missing word


def test_explained_adds_wrapped_entries_once():
    text = explained("Step size of the optimizer.", "learning rate", "learning_rate", "epoch")
    assert text.startswith("Step size of the optimizer.\n\nlearning rate: ")
    assert flat(text).count(term("learning rate")) == 1 and has(text, "epoch")
    assert all(len(line) <= WRAP for line in text.splitlines()[1:])
    assert explained(text, "epoch") == text
    assert explained("", "stride") == entry("stride")
    with pytest.raises(KeyError, match="the glossary has no term 'stridez'"):
        explained("", "stridez")


def test_summary_columns_cells_and_totals(window, qtbot):
    from visualcnn.gui.main_window import preset_paths

    assert window.load_preset(next(p for p in preset_paths() if p.stem == "resnet_mnist"))
    table = window.summary.table
    assert has(table.horizontalHeaderItem(1).toolTip(), "None")
    assert has(table.horizontalHeaderItem(2).toolTip(), "non-trainable parameters")
    assert table.columnCount() == 4 and has(table.horizontalHeaderItem(1).toolTip(), "None")  # remade for a graph
    row = next(r for r in range(table.rowCount()) if "BatchNormalization" in table.item(r, 0).text())
    assert "None" in table.item(row, 1).text() and has(table.item(row, 1).toolTip(), "None")
    params_tip = table.item(row, 2).toolTip()
    assert "MACs" in params_tip and has(params_tip, "non-trainable parameters")  # the MACs line stays first
    conv = next(r for r in range(table.rowCount()) if "(Conv2D)" in table.item(r, 0).text())
    assert not has(table.item(conv, 2).toolTip(), "non-trainable parameters")  # only where there are some
    assert has(window.summary.totals.toolTip(), "non-trainable parameters")
    assert has(window.summary.costs.toolTip(), "MACs")


def test_inspector_rows_explain_padding_and_stride(seed_window):
    seed_window.pipeline.list_widget.select_row(0)  # conv2d
    inspector = seed_window.inspector
    padding = inspector.editors["padding"].toolTip()
    assert has(padding, "valid") and has(padding, "same") and has(padding, "padding")
    assert padding.startswith(inspector.editors["padding"].arg.doc)  # the argument's own doc first
    assert has(inspector.editors["strides"].toolTip(), "stride")
    assert has(inspector.editors["kernel_size"].toolTip(), "kernel")
    label = inspector.form.labelForField(inspector.editors["strides"])
    assert has(label.toolTip(), "stride")
    seed_window.pipeline.list_widget.select_row(len(seed_window.document) - 1)  # dense_1, softmax
    assert has(inspector.editors["activation"].toolTip(), "softmax")
    assert has(inspector.editors["activation"].toolTip(), "logits")


def test_cards_explain_none_and_the_receptive_field(seed_window):
    view = seed_window.pipeline.list_widget
    tip = view.model().data(view.model().index(0), Qt.ItemDataRole.ToolTipRole)
    assert tip.startswith("out_h = ")  # the derivation stays first
    assert has(tip, "None") and has(tip, "receptive field") and has(tip, "MACs")
    assert not has(tip, "non-trainable parameters")


def test_train_tab_settings_curves_and_draw_tab(seed_window):
    controls = seed_window.train_panel.controls
    for attribute, name in (("batch_size", "batch size"), ("epochs", "epoch"), ("optimizer", "optimizer"),
                            ("learning_rate", "learning rate"), ("validation_split", "validation split")):
        widget = getattr(controls, attribute)
        assert has(widget.toolTip(), name), attribute
    form = controls.findChildren(type(seed_window.inspector.form))[0]
    assert has(form.labelForField(controls.batch_size).toolTip(), "batch size")
    curves = seed_window.train_panel.curves
    assert has(curves.loss_plot.getAxis("left").toolTip(), "cross-entropy")
    assert has(curves.loss_plot.getAxis("bottom").toolTip(), "epoch")
    assert has(curves.loss_plot.titleLabel.toolTip(), "loss")
    from visualcnn.gui.draw_tab import ProbabilityBarsWidget

    bars = seed_window.draw_panel.findChildren(ProbabilityBarsWidget)
    assert bars and has(bars[0].toolTip(), "softmax") and has(bars[0].toolTip(), "logits")
    assert has(seed_window.train_status.toolTip(), "None")


def test_explain_works_on_a_chart_axis(seed_window):
    axis = seed_window.train_panel.curves.accuracy_plot.getAxis("left")
    before = axis.toolTip()
    explain(axis, "accuracy")
    assert axis.toolTip() == before  # already there: nothing added twice


def test_cards_explain_their_type_and_settings_words(window):
    from visualcnn.gui.main_window import preset_paths

    assert window.load_preset(next(p for p in preset_paths() if p.stem == "resnet_mnist"))
    model = window.pipeline.list_widget.model()
    tips = {window.document.entry(r).class_name + str(r): model.data(model.index(r), Qt.ItemDataRole.ToolTipRole)
            for r in range(len(window.document))}
    conv = next(t for k, t in tips.items() if k.startswith("Conv2D"))
    assert has(conv, "convolution") and has(conv, "filter") and has(conv, "same")
    strided = [model.data(model.index(r), Qt.ItemDataRole.ToolTipRole) for r in range(len(window.document))
               if window.document.entry(r).config.get("strides") in (2, [2, 2], (2, 2))]
    assert strided and all(has(t, "stride") for t in strided)
    assert not has(tips["Conv2D0"], "stride")  # only where the card says "stride 2"
    bn = next(t for k, t in tips.items() if k.startswith("BatchNormalization"))
    assert has(bn, "batch normalization") and has(bn, "non-trainable parameters") and not has(bn, "momentum")


def test_explain_menu_results_and_headings(seed_window):
    assert has(seed_window.explain_action.toolTip(), "grad-cam")
    assert has(seed_window.embedding_action.toolTip(), "embedding")
    results = seed_window.train_panel.results
    assert has(results.matrix.toolTip(), "confusion matrix") and has(results.summary.toolTip(), "test set")
    from PySide6.QtWidgets import QLabel

    heading = next(l for l in seed_window.train_panel.findChildren(QLabel) if "Filters (conv kernels)" in l.text())
    assert has(heading.toolTip(), "filter") and has(heading.toolTip(), "kernel")


def test_the_palette_explains_its_groups_and_layer_types(seed_window):
    from html import unescape

    from PySide6.QtWidgets import QTreeWidgetItemIterator

    from visualcnn.gui.glossary_tips import FAMILY_TERMS

    for names in FAMILY_TERMS.values():
        for name in names:
            assert term(name)
    tips = {}
    iterator = QTreeWidgetItemIterator(seed_window.palette_widget)
    while iterator.value():
        item = iterator.value()
        tips[item.text(0)] = unescape(item.toolTip(0))
        iterator += 1
    assert has(tips["Regularisation"], "overfitting") and has(tips["Pooling"], "pooling")
    assert tips["Conv2D"].startswith("<b>Conv2D</b>") and has(tips["Conv2D"].replace("</p>", " "), "convolution")
    assert has(tips["BatchNormalization"].replace("</p>", " "), "batch normalization")
