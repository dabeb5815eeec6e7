"""The Draw tab: strokes -> MNIST-style image -> prediction, feature maps, saliency; no model;
classifying while a training run is in progress."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

from visualcnn.engine import Sequential, layers
from visualcnn.engine.datasets import load_mnist
from visualcnn.gui.draw_tab import NO_MODEL, DrawTabWidget, saliency_rgb
from visualcnn.gui.training_worker import TrainingController, TrainingRequest


@pytest.fixture(scope="module")
def mnist_slice():
    (x, y), (xt, yt) = load_mnist()
    scale = lambda a: (a[..., None] / 255.0).astype(np.float32)  # noqa: E731
    return scale(x[:3000]), y[:3000].astype(np.int64), scale(xt[:500]), yt[:500].astype(np.int64)


def small_model():
    model = Sequential([layers.Input(shape=(28, 28, 1)), layers.Conv2D(8, 3, activation="relu"),
                        layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.fixture(scope="module")
def trained(mnist_slice):
    x, y, _, _ = mnist_slice
    model = small_model()
    model.fit(x, y, batch_size=64, epochs=2, verbose=0)
    return model


def draw_one(qtbot, canvas):
    """A vertical stroke with the real mouse: a '1'."""
    top, bottom = int(canvas.height() * 0.15), int(canvas.height() * 0.85)
    x = canvas.width() // 2
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=QPoint(x, top))
    for y in range(top, bottom, 10):
        qtbot.mouseMove(canvas, QPoint(x, y))
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=QPoint(x, bottom))


def make_tab(qtbot):
    tab = DrawTabWidget()
    qtbot.addWidget(tab)
    tab.resize(1100, 800)
    tab.show()
    qtbot.waitExposed(tab)
    return tab


def test_without_a_model_it_draws_and_preprocesses_and_says_so(qtbot):
    tab = make_tab(qtbot)
    assert NO_MODEL in tab._confidence.text()
    draw_one(qtbot, tab.canvas)
    assert tab.canvas.image_array().max() == 255
    assert tab._digit is not None and tab._digit.shape == (28, 28)
    assert tab._confidence.text() == NO_MODEL and tab._answer.text() == "?"


def test_blank_canvas_says_nothing_drawn(qtbot, trained):
    tab = make_tab(qtbot)
    tab.set_model(trained)
    assert tab._preview.text() == "nothing drawn yet"
    draw_one(qtbot, tab.canvas)
    tab.canvas.clear()
    assert tab._preview.text() == "nothing drawn yet" and tab._answer.text() == "?"


def test_stroke_gives_prediction_feature_maps_and_saliency(qtbot, trained):
    tab = make_tab(qtbot)
    tab.set_model(trained)
    with qtbot.waitSignal(tab.classified, timeout=5000) as blocker:
        draw_one(qtbot, tab.canvas)
    image, probs = blocker.args[0]
    assert image.shape == (28, 28) and probs.shape == (10,)
    assert abs(probs.sum() - 1) < 1e-4
    assert tab._answer.text() == str(int(np.argmax(probs)))
    assert tab._answer.text() == "1", "a clean vertical stroke is a one for a network trained on MNIST"
    qtbot.waitUntil(lambda: len(tab._maps.layers()) == 2, timeout=3000)
    names = [layer.name for layer in tab._maps.layers()]
    assert names == ["conv2d", "max_pooling2d"]
    assert tab._maps.layers()[0].maps.shape == (26, 26, 8)
    assert not tab._saliency.pixmap().isNull()


def test_model_copy_is_independent_of_the_original(qtbot, trained):
    tab = make_tab(qtbot)
    tab.set_model(trained)
    assert tab._model is not trained
    first = tab._model.get_weights()[0]
    assert np.array_equal(first, trained.get_weights()[0]) and first is not trained.get_weights()[0]


def test_saliency_overlay_is_an_rgb_image():
    digit = np.zeros((28, 28), np.float32)
    digit[5:20, 13:15] = 1
    grad = np.zeros((28, 28), np.float32)
    grad[10, 14] = -3
    rgb = saliency_rgb(digit, grad)
    assert rgb.shape == (28, 28, 3) and rgb.dtype == np.uint8
    r, g, b = rgb[10, 14]
    assert r == 255 and g > 200 and b == 0  # the strongest gradient shows bright yellow
    assert rgb[0, 0].max() == 0


def test_pin_sends_the_drawn_digit_as_probe(qtbot, trained):
    tab = make_tab(qtbot)
    tab.set_model(trained)
    draw_one(qtbot, tab.canvas)
    with qtbot.waitSignal(tab.probe_pinned, timeout=2000) as blocker:
        tab._pin.click()
    assert blocker.args[0].shape == (28, 28)


def test_classify_while_a_training_run_is_in_progress(qtbot, trained, mnist_slice):
    """The engine's threading rule: predicting in the GUI thread during training must not crash
    or stall; the drawn digit is classified with weight snapshots taken by the worker."""
    x, y, xt, yt = mnist_slice
    tab = make_tab(qtbot)
    tab.set_model(trained)
    draw_one(qtbot, tab.canvas)
    controller = TrainingController()
    snapshots = []
    controller.snapshot_taken.connect(lambda snap: (snapshots.append(snap), tab.set_weights_snapshot(snap.weights)))
    model = small_model()
    tab.set_model(model)  # the tab follows the run's weights through snapshots
    with qtbot.waitSignal(controller.finished, timeout=120_000):
        controller.start(TrainingRequest(model, x, y, xt, yt, batch_size=32, epochs=2))
        classified = 0
        while controller.running:
            tab.canvas.undo_stroke()
            draw_one(qtbot, tab.canvas)  # each stroke classifies in this (GUI) thread
            classified += 1
            qtbot.wait(5)
    assert classified >= 3 and len(snapshots) >= 2
    assert tab.last_latency_ms is not None and tab._answer.text() in "0123456789"


def test_every_layer_with_an_image_shaped_output_shows_maps_in_a_graph(qtbot):
    """No family list decides: a ReLU, a ZeroPadding2D and an Add have 4-D outputs, so they
    show maps (with the receptive field the graph analysis gives); Flatten and Dense do not."""
    from visualcnn.engine import Input, Model

    inputs = Input(shape=(28, 28, 1))
    x = layers.ReLU()(layers.Conv2D(4, 3)(inputs))
    branch = layers.Conv2D(4, 3)(layers.ZeroPadding2D(1)(x))
    x = layers.MaxPooling2D(2)(layers.Add()([x, branch]))
    model = Model(inputs, layers.Dense(10, activation="softmax")(layers.Flatten()(x)))
    tab = make_tab(qtbot)
    tab.set_model(model)
    with qtbot.waitSignal(tab.classified, timeout=5000):
        draw_one(qtbot, tab.canvas)
    qtbot.waitUntil(lambda: len(tab._maps.layers()) == 6, timeout=3000)
    shown = {layer.class_name: layer for layer in tab._maps.layers()}
    assert set(shown) == {"Conv2D", "ReLU", "ZeroPadding2D", "Add", "MaxPooling2D"}
    assert shown["ZeroPadding2D"].maps.shape == (28, 28, 4)
    fields = {row.name: row.inference.field for row in model.analyse().rows}
    add = shown["Add"]
    assert (add.field_size, add.field_jump) == (fields[add.name].size, fields[add.name].jump)
    assert add.field_size == (5, 5)  # the larger of its inputs' fields: 3x3 and 3x3 + 3x3
