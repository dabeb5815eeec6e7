"""Activation maximisation (issue 13 item 4): the target grows, the seed fixes the
picture, progress is reported and cancel stops between steps."""

import threading

import numpy as np
import pytest

from visualcnn.engine import layers as L
from visualcnn.engine.explain import maximise
from visualcnn.engine.explain.filter_vis import gaussian_blur
from visualcnn.engine.model import Sequential, model_from_graph


def _cnn():
    model = Sequential([L.Input(shape=(12, 12, 1)), L.Conv2D(4, 3, activation="relu", name="c1"),
                        L.MaxPooling2D(2, name="p"), L.Conv2D(6, 3, activation="relu", name="c2"),
                        L.Flatten(), L.Dense(3, activation="softmax", name="out")])
    model.build(seed=2)
    return model


def _channel_mean(model, image, layer, channel):
    return float(model.activations(image[None])[layer][0, ..., channel].mean())


@pytest.mark.parametrize("layer, channel", [("c1", 2), ("c2", 5)])
def test_a_filters_mean_activation_grows(layer, channel):
    model = _cnn()
    seen = []
    result = maximise(model, layer_name=layer, channel=channel, steps=40, seed=1,
                      progress=lambda step, total, value: seen.append((step, total, value)))
    assert result.steps == 40 and not result.cancelled and len(result.curve) == 40
    assert [s[:2] for s in seen] == [(k, 40) for k in range(1, 41)]
    np.testing.assert_allclose([s[2] for s in seen], result.curve)
    # the reported values are the model's own, and the ascent gains a real margin
    assert result.final == pytest.approx(_channel_mean(model, result.image, layer, channel), rel=1e-5, abs=1e-6)
    assert result.final > 2 * result.initial + 0.05
    # monotonic-ish: the second half of the curve stays above the first quarter
    assert np.mean(result.curve[20:]) > np.mean(result.curve[:10])
    assert result.image.shape == (12, 12, 1) and result.image.min() >= 0.0 and result.image.max() <= 1.0


def test_a_filter_that_is_off_everywhere_at_the_start_turns_on():
    """c1's filter 0 is mostly negative: on the grey start every unit is below 0, so the
    relu passes no gradient; the ascent climbs the pre-activation until units turn on."""
    model = _cnn()
    result = maximise(model, layer_name="c1", channel=0, steps=40, seed=1)
    assert result.initial == 0.0 and result.final > 0.005


def test_an_output_class_score_grows_before_softmax():
    model = _cnn()
    result = maximise(model, class_index=2, steps=30, seed=0)
    kernel, bias = model.layers[-1].weights
    flat = model.activations(result.image[None])[model.layers[-2].name][0]
    assert result.final == pytest.approx(float(flat @ kernel[:, 2] + bias[2]), rel=1e-5, abs=1e-6)
    assert result.final > result.initial + 0.5
    assert "before softmax" in result.target


def test_same_seed_same_picture_other_seed_other_picture():
    model = _cnn()
    a = maximise(model, layer_name="c2", channel=1, steps=12, seed=5)
    b = maximise(model, layer_name="c2", channel=1, steps=12, seed=5)
    c = maximise(model, layer_name="c2", channel=1, steps=12, seed=6)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.curve, b.curve)
    assert not np.array_equal(a.image, c.image)


def test_cancel_stops_between_steps():
    model = _cnn()
    stop = threading.Event()

    def progress(step, total, value):
        if step == 3:
            stop.set()

    result = maximise(model, layer_name="c1", channel=2, steps=50, progress=progress, cancel=stop)
    assert result.cancelled and result.steps == 3 and len(result.curve) == 3
    called = []
    result = maximise(model, class_index=0, steps=50, cancel=lambda: called.append(1) or len(called) > 5)
    assert result.cancelled and result.steps == 5


def test_works_on_a_graph_model():
    layers = [L.Conv2D(4, 3, padding="same", activation="relu", name="a"), L.Conv2D(4, 3, padding="same", name="b"),
              L.Add(name="add"), L.GlobalAveragePooling2D(name="g"), L.Dense(2, activation="softmax", name="out")]
    model = model_from_graph("g", (8, 8, 1), layers, [(-1,), (0,), (0, 1), (2,), (3,)])
    model.build(seed=1)
    result = maximise(model, layer_name="add", channel=1, steps=40, seed=3)
    assert result.initial > 0.1 and result.final > 1.5 * result.initial


def test_regularisers_and_errors():
    image = np.zeros((7, 7, 1))
    image[3, 3] = 1.0
    blurred = gaussian_blur(image, 1.0)
    assert blurred.sum() == pytest.approx(1.0) and blurred[3, 3] < 0.2 and blurred[3, 4] == pytest.approx(blurred[4, 3])
    model = _cnn()
    with pytest.raises(ValueError, match="give layer_name and channel"):
        maximise(model)
    with pytest.raises(ValueError, match="channel must be from 0 to 5 for 'c2'"):
        maximise(model, layer_name="c2", channel=6)
    with pytest.raises(ValueError, match="class_index must be a class from 0 to 2"):
        maximise(model, class_index=3)
