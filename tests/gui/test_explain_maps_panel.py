"""Why did it answer that? (gui/explain_maps_panel.py): the maps on screen are the engine's,
the occlusion controls change the map, Cancel leaves no half map, closing mid-run is safe,
the sanity check shows two maps and their rank correlation, the window stays responsive."""

from __future__ import annotations

import time

import numpy as np
import pytest

from visualcnn.engine import Sequential, layers
from visualcnn.engine.datasets import load_mnist
from visualcnn.engine.explain import gradcam, occlusion, sanity_check
from visualcnn.engine.preprocess import canvas_to_mnist
from visualcnn.gui import explain_worker
from visualcnn.gui.explain_maps_panel import ExplainMapsWindow, sanity_sentence, mnist_test_digits
from visualcnn.gui.heatmap_view import DIVERGING, SEQUENTIAL, heat_rgb, rgb_image, scale_for

from loop_gaps import longest_gap_ms


@pytest.fixture(scope="module")
def trained():
    """A small two-conv CNN trained briefly on 600 digits: maps that mean something, quickly."""
    (x, y), _ = load_mnist()
    x = (x[:600, ..., None] / 255.0).astype(np.float32)
    model = Sequential([layers.Input(shape=(28, 28, 1)), layers.Conv2D(6, 3, activation="relu", name="c1"),
                        layers.MaxPooling2D(2), layers.Conv2D(8, 3, activation="relu", name="c2"),
                        layers.Flatten(), layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y[:600].astype(np.int64), batch_size=32, epochs=2, verbose=0)
    return model


def copy_of(model):
    from visualcnn.gui.draw_tab import copy_model

    return copy_model(model)


def draw_seven(canvas):
    canvas.add_stroke([(0.25, 0.22), (0.75, 0.22), (0.45, 0.85)])


def slow_predict(model, seconds: float, calls: list):
    """Make model.predict take `seconds` longer per call (a long occlusion on a tiny model)."""
    original = model.predict

    def predict(*args, **kwargs):
        calls.append(1)
        time.sleep(seconds)
        return original(*args, **kwargs)

    model.predict = predict


@pytest.fixture
def panel(qtbot, trained):
    window = ExplainMapsWindow()
    qtbot.addWidget(window)
    window.resize(1200, 820)
    window.show()
    yield window
    window.stop()


def wait_shown(qtbot, signal, timeout=20000):
    with qtbot.waitSignal(signal, timeout=timeout):
        pass


def test_gradcam_shown_is_the_engines_for_the_drawn_digit(qtbot, window, trained):
    """Through the real window: Explain > Why Did It Answer That? over a digit drawn on the canvas."""
    window.draw_panel.set_model(trained)
    window.tabs.setCurrentIndex(2)
    draw_seven(window.draw_panel.canvas)
    digit = canvas_to_mnist(window.draw_panel.canvas.image_array())
    panel = window.explain_windows.maps_window
    assert panel is None
    window.explain_action.trigger()
    panel = window.explain_windows.maps_window
    assert panel is not None and panel.isVisible() and panel.model is not trained  # its own copy
    qtbot.waitUntil(lambda: "maps" in panel.result, timeout=20000)
    assert panel.layer_choice.currentText() == "c2"  # the last conv layer by default
    expected = gradcam(trained, digit[..., None], "c2").heatmap[0]
    np.testing.assert_allclose(panel.gradcam_view.heat, expected, rtol=0, atol=1e-12)
    # the picture on screen is that map over that digit
    assert panel.gradcam_view.image == rgb_image(heat_rgb(digit, expected, SEQUENTIAL, 0.0, 1.0))
    assert panel.gradcam_view.image != rgb_image(heat_rgb(digit, 1 - expected, SEQUENTIAL, 0.0, 1.0))
    # another layer: that layer's map
    panel.result.pop("maps")
    panel.set_layer("c1")
    qtbot.waitUntil(lambda: "maps" in panel.result, timeout=20000)
    np.testing.assert_allclose(panel.gradcam_view.heat, gradcam(trained, digit[..., None], "c1").heatmap[0],
                               rtol=0, atol=1e-12)
    assert "c1" in panel.gradcam_view.title()
    # SmoothGrad is beside the saliency, both shown
    assert panel.saliency_view.heat is not None and panel.smooth_view.heat is not None
    assert not np.allclose(panel.saliency_view.heat, panel.smooth_view.heat)
    panel.close()


def test_a_test_digit_from_the_picker(qtbot, panel, trained):
    panel.set_source(copy_of(trained), None)
    assert panel.model is not None and "draw a digit" in panel.status.text().lower()
    panel.use_test_digit(7)
    images, labels = mnist_test_digits()
    qtbot.waitUntil(lambda: "maps" in panel.result, timeout=20000)
    np.testing.assert_array_equal(panel.image(), images[7])
    assert f"labelled {labels[7]}" in panel.input_view.caption()
    np.testing.assert_allclose(panel.gradcam_view.heat, gradcam(trained, images[7][..., None], "c2").heatmap[0],
                               atol=1e-12)


def test_occlusion_controls_change_the_map(qtbot, panel, trained):
    image = mnist_test_digits()[0][0]
    panel.set_source(copy_of(trained), image)
    qtbot.waitUntil(lambda: "occlusion" in panel.result, timeout=20000)
    first = panel.occlusion_view.heat.copy()
    np.testing.assert_allclose(first, occlusion(trained, image[..., None], patch=6, stride=2).heatmap[0], atol=1e-12)
    low, high = scale_for(first, DIVERGING)
    assert low == -high and panel.occlusion_view.image == rgb_image(heat_rgb(image, first, DIVERGING, low, high))
    panel.patch.setValue(9)
    qtbot.waitUntil(lambda: "occlusion" in panel.result and panel.result["occlusion"].patch == (9, 9), timeout=20000)
    second = panel.occlusion_view.heat
    assert not np.allclose(first, second)
    np.testing.assert_allclose(second, occlusion(trained, image[..., None], patch=9, stride=2).heatmap[0], atol=1e-12)
    panel.stride.setValue(5)
    qtbot.waitUntil(lambda: "occlusion" in panel.result and panel.result["occlusion"].stride == (5, 5), timeout=20000)
    np.testing.assert_allclose(panel.occlusion_view.heat,
                               occlusion(trained, image[..., None], patch=9, stride=5).heatmap[0], atol=1e-12)


def test_cancel_stops_the_occlusion_and_leaves_no_half_map(qtbot, panel, trained):
    model = copy_of(trained)
    calls: list = []
    slow_predict(model, 0.05, calls)
    panel.patch.setValue(1)  # before the model: 784 patches in 7 batches, one call each
    panel.stride.setValue(1)
    panel.set_source(model, mnist_test_digits()[0][1])
    qtbot.waitUntil(lambda: panel.occlusion_progress.value() > 0, timeout=20000)  # running: a batch is done
    assert panel.occlusion_cancel.isEnabled()
    panel.occlusion_cancel.click()
    assert panel.occlusion_view.heat is None and panel.occlusion_view.image is None
    assert "cancelled" in panel.occlusion_view.text()
    qtbot.waitUntil(lambda: not panel.runner.is_busy() and explain_worker.running_threads() == 0, timeout=20000)
    qtbot.wait(100)
    assert "occlusion" not in panel.result and panel.occlusion_view.heat is None  # nothing arrived later
    assert len(calls) < 1 + 7  # stopped between batches: not every batch ran
    assert not panel.occlusion_cancel.isEnabled() and panel.occlusion_progress.value() == 0


def test_closing_the_window_during_a_run_is_safe(qtbot, window, trained):
    window.draw_panel.set_model(trained)
    draw_seven(window.draw_panel.canvas)
    panel = window.explain_windows.open_maps()
    qtbot.waitUntil(lambda: "occlusion" in panel.result, timeout=20000)
    calls: list = []
    slow_predict(panel.model, 0.05, calls)
    panel.patch.setValue(1)
    panel.stride.setValue(1)
    qtbot.waitUntil(lambda: len(calls) > 1, timeout=20000)
    assert panel.runner.running_key() == "occlusion"
    window.undo_stack.setClean()
    assert window.close()
    assert explain_worker.running_threads() == 0  # stopped and waited for, never destroyed running
    assert len(calls) < 1 + 7
    assert panel.occlusion_view.heat is None


def test_the_sanity_check_shows_two_maps_and_their_correlation(qtbot, panel, trained):
    image = mnist_test_digits()[0][1]  # one whose Grad-CAM is not all zero on either network
    panel.set_source(copy_of(trained), image)
    panel.set_layer("c1")
    qtbot.waitUntil(lambda: "maps" in panel.result, timeout=20000)
    panel.sanity_run.click()
    qtbot.waitUntil(lambda: "sanity" in panel.result, timeout=20000)
    expected = sanity_check(trained, image[..., None], "gradcam", layer_name="c1")
    np.testing.assert_allclose(panel.sanity_trained.heat, expected.maps[0], atol=1e-12)
    np.testing.assert_allclose(panel.sanity_random.heat, expected.steps[0].maps[0], atol=1e-12)
    assert not np.allclose(panel.sanity_trained.heat, panel.sanity_random.heat)
    rho = float(expected.steps[0].spearman[0])
    assert np.isfinite(rho) and f"ρ = {rho:.2f}" in panel.sanity_trained.caption()
    assert panel.sanity_text.text() == sanity_sentence(rho)
    # SmoothGrad's check too
    panel.sanity_method.setCurrentIndex(1)
    assert "sanity" not in panel.result and panel.sanity_trained.heat is None
    panel.sanity_run.click()
    qtbot.waitUntil(lambda: "sanity" in panel.result, timeout=20000)
    assert panel.result["sanity"].method == "smoothgrad" and panel.sanity_random.heat is not None


def test_sanity_sentences_say_what_the_correlation_means():
    assert "Careful" in sanity_sentence(0.9)
    assert "partly" in sanity_sentence(0.3)
    assert "depends on what the network learned" in sanity_sentence(0.05)
    assert "all zero" in sanity_sentence(float("nan"))


def test_without_a_model_it_says_what_to_do(qtbot, window):
    window.explain_action.trigger()
    panel = window.explain_windows.maps_window
    assert "Train or load a model" in panel.status.text()
    assert not panel.sanity_run.isEnabled() and panel.gradcam_view.heat is None
    panel.close()


def test_the_window_stays_responsive_while_occlusion_runs(qtbot, panel, trained):
    """Longest event-loop gap while a long occlusion (784 patches, stride 1) runs in the background."""
    image = mnist_test_digits()[0][3]
    panel.set_source(copy_of(trained), image)
    qtbot.waitUntil(lambda: "occlusion" in panel.result and "maps" in panel.result, timeout=20000)  # kernels warm
    panel.patch.blockSignals(True)
    panel.patch.setValue(2)
    panel.patch.blockSignals(False)
    panel.stride.blockSignals(True)
    panel.stride.setValue(1)
    panel.stride.blockSignals(False)
    gap = longest_gap_ms(qtbot, panel.recompute_occlusion,
                         lambda: "occlusion" in panel.result and panel.result["occlusion"].stride == (1, 1))
    print(f"\nlongest event-loop gap while occlusion ran: {gap:.1f} ms")
    assert gap < 250  # generous for a loaded CI machine; measured under Xvfb: see the report


def test_next_mistake_finds_the_first_test_digit_it_gets_wrong(qtbot, panel, trained):
    panel.set_source(copy_of(trained), None)
    images, labels = mnist_test_digits()
    answers = trained.predict(images[:2000, ..., None], batch_size=250).argmax(axis=-1)
    wrong = np.flatnonzero(answers != labels[:2000])
    assert len(wrong) >= 2  # a briefly trained net: mistakes come early
    panel.next_mistake.click()
    qtbot.waitUntil(lambda: panel.test_button.isChecked() and "maps" in panel.result, timeout=20000)
    assert panel.test_index.value() == wrong[0]
    assert f"labelled {labels[wrong[0]]}" in panel.input_view.caption()
    panel.result.pop("maps")
    panel.next_mistake.click()  # from the one shown on
    qtbot.waitUntil(lambda: panel.test_index.value() == wrong[1] and "maps" in panel.result, timeout=20000)
    assert f"answers <b>{answers[wrong[1]]}</b>" in panel.answer.text()


def test_choosing_a_test_digit_number_explains_it(qtbot, panel, trained):
    panel.set_source(copy_of(trained), mnist_test_digits()[0][0])
    assert panel.drawn_button.isChecked()
    qtbot.waitUntil(lambda: "maps" in panel.result, timeout=20000)
    panel.result.pop("maps")
    panel.test_index.setValue(5)  # the arrows or typing a number: that digit, no extra click
    assert panel.test_button.isChecked()
    qtbot.waitUntil(lambda: "maps" in panel.result, timeout=20000)
    np.testing.assert_array_equal(panel.image(), mnist_test_digits()[0][5])
    np.testing.assert_allclose(panel.gradcam_view.heat,
                               gradcam(trained, mnist_test_digits()[0][5][..., None], "c2").heatmap[0], atol=1e-12)
