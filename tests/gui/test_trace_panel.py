"""The trace panel (issue 13 item 1): clicking a feature-map cell in the Draw tab or the Train
probe opens a window taking that value apart, with the model's own value; the grids hold
the engine's trace numbers; pooling, Dense and the backward side are shown."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

from visualcnn.engine import Sequential
from visualcnn.engine import layers as L
from visualcnn.engine.explain import trace
from visualcnn.engine.explain.text import n


def tiny_model(seed=0):
    model = Sequential([L.Input((28, 28, 1)), L.Conv2D(4, 3, activation="relu", name="conv"),
                        L.MaxPooling2D(2, name="pool"), L.Conv2D(3, 3, strides=2, padding="same", name="conv2"),
                        L.Flatten(name="flatten"), L.Dense(10, activation="softmax", name="dense")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.build(seed=seed)
    return model


def a_one():
    digit = np.zeros((28, 28), np.float32)
    digit[5:23, 12:16] = 1.0
    return digit


def draw_one(qtbot, canvas):
    top, bottom = int(canvas.height() * 0.15), int(canvas.height() * 0.85)
    x = canvas.width() // 2
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=QPoint(x, top))
    for y in range(top, bottom, 10):
        qtbot.mouseMove(canvas, QPoint(x, y))
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=QPoint(x, bottom))


def click_cell(qtbot, maps, layer_index, channel, y, x):
    view = maps._graphics
    pos = view.mapFromScene(maps.scene_position(layer_index, channel, y, x))
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=pos)


@pytest.fixture
def draw_tab(qtbot):
    from visualcnn.gui.app import create_application
    from visualcnn.gui.draw_tab import DrawTabWidget

    create_application()
    tab = DrawTabWidget()
    qtbot.addWidget(tab)
    tab.resize(1100, 800)
    tab.show()
    qtbot.waitExposed(tab)
    return tab


def test_clicking_a_draw_tab_cell_traces_it_with_the_models_value(qtbot, draw_tab):
    model = tiny_model()
    draw_tab.set_model(model)
    draw_one(qtbot, draw_tab.canvas)
    qtbot.waitUntil(lambda: len(draw_tab._maps.layers()) == 3)
    qtbot.wait(100)
    digit = draw_tab._digit.reshape(28, 28, 1)
    acts = model.activations(digit[None])
    # a conv cell on the stroke, channel 2; then a pooling cell; the window is reused
    with qtbot.waitSignal(draw_tab._maps.cell_clicked) as clicked:
        click_cell(qtbot, draw_tab._maps, 0, 2, 12, 13)
    assert clicked.args == ["conv", 2, 12, 13]
    window = draw_tab.tracer.trace_window
    assert window is not None and window.isVisible()
    panel = window.panel
    expected = float(acts["conv"][0, 12, 13, 2])
    assert panel.trace.index == (12, 13, 2)
    assert panel.trace.value == expected
    assert panel.trace.computed == pytest.approx(expected, abs=1e-5)
    assert n(expected) in panel.title.text()
    assert "the model's value" in panel.equation.text()
    # the grids are the engine's numbers, the receptive field is drawn
    np.testing.assert_allclose(panel.patch.values, panel.trace.patch[:, :, 0])
    np.testing.assert_allclose(panel.kernel.values, panel.trace.kernel[:, :, 0])
    np.testing.assert_allclose(panel.products.values, panel.trace.products[:, :, 0])
    assert panel.grids_box.isVisibleTo(panel) and not panel.window_grid.isVisibleTo(panel)
    assert "rows 12–14, columns 13–15" in panel.field_caption.text()  # valid 3x3: rows 12..14
    assert panel.field_image.pixmap().width() >= 28 * 6  # projector-sized
    click_cell(qtbot, draw_tab._maps, 1, 1, 6, 6)
    assert draw_tab.tracer.trace_window is window
    assert panel.trace.layer_name == "pool" and panel.trace.kind == "max_pool"
    assert panel.trace.value == float(acts["pool"][0, 6, 6, 1])
    assert panel.window_grid.isVisibleTo(panel) and not panel.grids_box.isVisibleTo(panel)
    assert panel.window_grid.ring is not None


def test_many_channels_are_summarised_and_expand_one_at_a_time(qtbot):
    from visualcnn.gui.app import create_application
    from visualcnn.gui.trace_panel import TraceWindow

    create_application()
    model = tiny_model()
    window = TraceWindow()
    qtbot.addWidget(window)
    window.show_cell(model, a_one(), "conv2", (3, 4, 1), label=7)
    panel = window.panel
    t = trace(model, a_one()[:, :, None], "conv2", (3, 4, 1))
    order = list(np.argsort(-np.abs(t.channel_sums), kind="stable"))
    assert panel.channels.count() == 4  # conv2 reads the 4 channels of pool
    assert panel.channel_row.isVisibleTo(panel)
    for row, channel in enumerate(order):
        panel.channels.setCurrentIndex(row)
        np.testing.assert_allclose(panel.products.values, t.products[:, :, channel])
        assert f"channel {channel}: sum of the 9 products = <b>{n(t.channel_sums[channel])}</b>" in \
            panel.channel_sum.text()
    # the backward side: the chosen label, the model's loss, this cell's kernel-gradient share
    assert panel.label_choice.value() == 7
    b = panel.backward
    assert b.label == 7 and b.loss_name == "sparse_categorical_crossentropy"
    assert "for label 7" in panel.backward_text.text()
    np.testing.assert_allclose(panel.kernel_share.values, b.kernel_share[:, :, order[-1]])
    panel.label_choice.setValue(3)
    assert panel.backward.label == 3


def test_dense_and_flatten_cells(qtbot):
    from visualcnn.gui.app import create_application
    from visualcnn.gui.trace_panel import TraceWindow

    create_application()
    model = tiny_model()
    window = TraceWindow()
    qtbot.addWidget(window)
    window.show_cell(model, a_one(), "dense", (4,))
    panel = window.panel
    assert panel.terms.isVisibleTo(panel) and not panel.grids_box.isVisibleTo(panel)
    t = panel.trace
    assert panel.terms.rowCount() == len(t.terms) + 1  # the top contributions and "the others"
    assert panel.terms.item(0, 0).text() == t.terms[0].label
    assert panel.terms.item(0, 3).text() == n(t.terms[0].product)
    assert "softmax" in panel.equation.text() and "the model's value" in panel.equation.text()
    assert not panel.slide_button.isVisibleTo(panel)  # Dense does not slide
    window.show_cell(model, a_one(), "flatten", (5,))
    assert panel.trace.kind == "moves" and not panel.terms.isVisibleTo(panel)


def test_the_slide_button_opens_the_slide_view_on_that_layer(qtbot, draw_tab):
    draw_tab.set_model(tiny_model())
    draw_one(qtbot, draw_tab.canvas)
    qtbot.waitUntil(lambda: len(draw_tab._maps.layers()) == 3)
    window = draw_tab.trace_cell("conv2", 0, 1, 1)
    assert window.panel.slide_button.isVisibleTo(window.panel)
    window.panel.slide_button.click()
    slide = draw_tab.tracer.slide_window
    assert slide is not None and slide.isVisible()
    assert slide.view.layer_name == "conv2"


def test_train_probe_cell_is_traced_on_the_snapshot_it_shows(qtbot):
    from visualcnn.gui.app import create_application
    from visualcnn.gui.train_tab import TrainTabWidget

    create_application()
    tab = TrainTabWidget()
    qtbot.addWidget(tab)
    tab.set_model_source(lambda: tiny_model())
    tab.controls.train_images.setValue(640)
    tab.controls.batch_size.setValue(64)
    tab.controls.epochs.setValue(1000)
    tab.resize(1200, 800)
    tab.show()
    qtbot.waitExposed(tab)
    tab.set_probe_image(a_one())
    try:
        # between runs: the previewed model, the probe's label-less drawn digit
        qtbot.waitUntil(lambda: len(tab.feature_maps.layers()) == 3, timeout=10000)
        window = tab.trace_cell("conv", 1, 10, 13)
        expected = tab._model.activations(a_one()[None, :, :, None])["conv"][0, 10, 13, 1]
        assert window.panel.trace.value == float(expected)
        # during a run: the snapshot's weights and probe, never the model being trained
        tab.start()
        qtbot.waitUntil(lambda: tab._shown_snapshot is not None and tab._shown_snapshot.activations is not None,
                        timeout=15000)
        snapshot = tab._shown_snapshot
        window = tab.trace_cell("conv2", 2, 3, 3)
        assert window.panel.trace.value == pytest.approx(float(snapshot.activations["conv2"][3, 3, 2]), abs=1e-6)
        assert window.panel._model is not tab._model
        slide = tab.watch_slide("conv2")
        assert slide.view.layer_name == "conv2" and slide.view._model is not tab._model
        np.testing.assert_array_equal(slide.view._image[:, :, 0], snapshot.probe)
    finally:
        tab.shutdown()


def test_the_backward_side_uses_the_models_loss(qtbot, draw_tab):
    """The Draw tab classifies with an uncompiled copy: the original's loss is passed on."""
    model = tiny_model()
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    draw_tab.set_model(model)
    draw_one(qtbot, draw_tab.canvas)
    qtbot.waitUntil(lambda: len(draw_tab._maps.layers()) == 3)
    panel = draw_tab.trace_cell("conv2", 1, 2, 3).panel
    assert panel.backward.loss_name == "categorical_crossentropy"
    assert "categorical_crossentropy for label" in panel.backward_text.text()
    assert panel.backward.label == int(np.argmax(model.predict(draw_tab._digit.reshape(1, 28, 28, 1))[0]))


def test_a_merge_lists_each_inputs_share(qtbot):
    from visualcnn.engine import Input, Model
    from visualcnn.gui.app import create_application
    from visualcnn.gui.trace_panel import TraceWindow

    create_application()
    inp = Input((6, 6, 1))
    a = L.Conv2D(2, 3, padding="same", name="a")(inp)
    b = L.Conv2D(2, 1, name="b")(inp)
    model = Model(inp, L.Flatten()(L.Add(name="add")([a, b])))
    model.build(seed=1)
    model.set_weights([np.abs(w) + 0.01 for w in model.get_weights()])  # both branches positive
    x = np.linspace(0.1, 1.0, 36, dtype=np.float32).reshape(6, 6, 1)
    acts = model.activations(x[None])
    i, j, f = max(((i, j, f) for i in range(6) for j in range(6) for f in range(2)),
                  key=lambda k: min(acts["a"][0][k], acts["b"][0][k]))  # both inputs positive
    assert min(acts["a"][0][i, j, f], acts["b"][0][i, j, f]) > 0
    window = TraceWindow()
    qtbot.addWidget(window)
    window.show_cell(model, x, "add", (i, j, f), label=0)
    panel = window.panel
    assert panel.trace.kind == "merge" and panel.terms.isVisibleTo(panel)
    assert [panel.terms.item(r, 0).text() for r in range(2)] == ["a", "b"]
    va, vb = float(acts["a"][0][i, j, f]), float(acts["b"][0][i, j, f])
    assert panel.terms.item(0, 2).text() == f"{100 * va / (va + vb):.0f}%"
    assert panel.terms.item(1, 2).text() == f"{100 * vb / (va + vb):.0f}%"
    assert panel.trace.value == float(acts["add"][0][i, j, f])


def zoo():
    model = Sequential([L.Input((10, 10, 2)), L.Conv2D(3, 3, padding="same", name="conv"),
                        L.BatchNormalization(name="bn"), L.ReLU(name="relu"),
                        L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="depthwise"),
                        L.SeparableConv2D(4, 3, strides=2, padding="same", name="separable"),
                        L.Conv2DTranspose(2, 3, strides=2, padding="same", name="transpose"),
                        L.AveragePooling2D(3, strides=2, padding="same", name="avg"),
                        L.ZeroPadding2D(1, name="pad"), L.GlobalAveragePooling2D(name="gap"),
                        L.Dense(6, name="dense"), L.Softmax(name="softmax")])
    model.build(seed=4)
    rng = np.random.default_rng(5)
    model.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(np.float32) if w.ndim == 1 else
                       rng.normal(0, 0.5, w.shape).astype(np.float32) for w in model.get_weights()])
    return model


def test_every_kind_of_layer_is_shown_with_the_models_value(qtbot):
    from visualcnn.gui.app import create_application
    from visualcnn.gui.slide_view import SlideWindow
    from visualcnn.gui.trace_panel import TraceWindow

    create_application()
    model = zoo()
    x = np.random.default_rng(6).normal(size=(10, 10, 2)).astype(np.float32)
    acts = model.activations(x[None])
    window = TraceWindow()
    qtbot.addWidget(window)
    for layer in model.layers:
        out = acts[layer.name][0]
        index = tuple(d // 2 for d in out.shape)
        window.show_cell(model, x, layer.name, index, label=1)
        panel = window.panel
        assert panel.trace.value == float(out[index]), layer.name
        assert "the model's value" in panel.equation.text(), layer.name
        assert n(panel.trace.value) in panel.title.text()
        assert panel.backward is not None and panel.backward.label == 1
    slide = SlideWindow()
    qtbot.addWidget(slide)
    slide.show_layer(model, x)
    view = slide.view
    names = [view.layer.itemText(k) for k in range(view.layer.count())]
    assert names == ["conv", "depthwise", "separable", "avg"]
    for name in names:
        view.choose_layer(name)
        view.filter.setValue(view.filter.maximum())
        view.fill_all()
        np.testing.assert_array_equal(view.shown, acts[name][0][:, :, view.filter.maximum()])


def test_a_cell_with_no_gradient_says_why_instead_of_a_grid_of_zeros(qtbot):
    from visualcnn.gui.app import create_application
    from visualcnn.gui.trace_panel import TraceWindow

    create_application()
    model = tiny_model()
    x = a_one()[:, :, None]
    off = np.argwhere(model.activations(x[None])["conv"][0] == 0)[0]  # relu is off: dL/dz = 0
    window = TraceWindow()
    qtbot.addWidget(window)
    window.show_cell(model, x, "conv", tuple(int(i) for i in off), label=1)
    panel = window.panel
    assert panel.backward.dpre == 0
    assert not panel.kernel_share.isVisibleTo(panel)
    assert "dL/dz is 0" in panel.kernel_share_caption.text()


def test_a_tab_is_freed_when_dropped_not_left_to_the_garbage_collector(qtbot):
    """A tab shown on its own (benchmarks, screenshots, tests) goes as soon as its last reference
    does, with its trace and slide windows. A reference cycle back to it (the cell tracer's owner,
    the feature maps' click handler) left it to Python's cyclic collector, which could run inside
    the tab's own paint event and delete the widget being painted: a segfault."""
    import gc
    import weakref

    from PySide6.QtCore import QCoreApplication

    from visualcnn.gui.app import create_application
    from visualcnn.gui.draw_tab import DrawTabWidget
    from visualcnn.gui.train_tab import TrainTabWidget

    create_application()
    gc.collect()
    gc.disable()  # only reference counting may free them here
    try:
        tab = DrawTabWidget()
        tab.resize(1100, 800)
        tab.show()
        qtbot.waitExposed(tab)
        tab.set_model(tiny_model())
        draw_one(qtbot, tab.canvas)
        qtbot.waitUntil(lambda: len(tab._maps.layers()) == 3)
        click_cell(qtbot, tab._maps, 0, 2, 12, 13)  # the click handler still reaches the tab
        assert tab.tracer.trace_window is not None and tab.tracer.trace_window.isVisible()
        tab.tracer.trace_window.panel.slide_button.click()
        assert tab.tracer.slide_window is not None and tab.tracer.slide_window.isVisible()
        gone = weakref.ref(tab)
        tab.close()
        del tab
        assert gone() is None

        train = TrainTabWidget()
        train.show()
        qtbot.waitExposed(train)
        QCoreApplication.processEvents()  # its pending first-show call (a queued bound method) runs
        gone = weakref.ref(train)
        train.shutdown()
        train.close()
        del train
        assert gone() is None
    finally:
        gc.enable()
