"""explain.window.slide_geometry (issue 13 item 2): for every output cell of every sliding
layer, the window is the one trace() reads and the output size is the model's; 'same'
puts the odd extra zero at the end (bottom / right), as Keras."""

from __future__ import annotations

import numpy as np
import pytest

from visualcnn.engine import Input, Sequential
from visualcnn.engine import layers as L
from visualcnn.engine.explain import trace
from visualcnn.engine.explain.window import slide_geometry


def sliding_model():
    model = Sequential([
        Input((9, 10, 2)),
        L.Conv2D(2, 4, strides=2, padding="same", name="s2_same"),  # even kernel: odd total padding
        L.Conv2D(2, 3, dilation_rate=2, padding="same", name="dilated_same"),
        L.Conv2D(2, (2, 3), strides=(1, 2), name="valid"),
        L.MaxPooling2D(2, strides=1, padding="same", name="max_same"),
        L.AveragePooling2D(2, name="avg_valid"),
        L.DepthwiseConv2D(3, padding="same", name="depthwise"),
        L.SeparableConv2D(2, 2, padding="same", name="separable"),
    ])
    model.build()
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in model.get_weights()])
    return model


@pytest.mark.parametrize("name", ["s2_same", "dilated_same", "valid", "max_same", "avg_valid", "depthwise",
                                  "separable"])
def test_every_window_is_the_one_trace_reads(name):
    model = sliding_model()
    x = np.random.default_rng(1).normal(size=model.input_shape).astype(np.float32)
    acts = model.activations(x[None])
    position = [layer.name for layer in model.layers].index(name)
    layer = model.layers[position]
    source = model.input_shape if position == 0 else acts[model.layers[position - 1].name].shape[1:]
    geometry = slide_geometry(layer, source[:2])
    assert geometry.output_size == acts[name].shape[1:3]
    cells = geometry.cells()
    assert len(cells) == geometry.output_size[0] * geometry.output_size[1]
    assert cells == sorted(cells)  # row by row, left to right
    for i, j in cells:
        t = trace(model, x, name, (i, j, 0))
        assert geometry.window(i, j) == (t.window_rows, t.window_cols), (i, j)


def test_same_padding_puts_the_odd_zero_at_the_end():
    model = sliding_model()
    g = slide_geometry(model.layers[0], (9, 10))
    # 9 rows, kernel 4, stride 2: 5 outputs need 4*2+4 = 12 rows, 3 zeros: 1 on top, 2 below
    assert g.output_size == (5, 5)
    assert g.pads == ((1, 2), (1, 1))
    assert g.window(0, 0) == ((-1, 0, 1, 2), (-1, 0, 1, 2))
    assert g.window(4, 4) == ((7, 8, 9, 10), (7, 8, 9, 10))  # rows 9, 10: the bottom zeros
    assert "1 zero row(s) on top, 2 at the bottom" in g.describe()
    assert "odd extra zero at the end" in g.describe()


def test_dilation_leaves_gaps_and_pooling_defaults_its_stride():
    model = sliding_model()
    g = slide_geometry(model.layers[1], (5, 5))
    assert g.window(0, 0) == ((-2, 0, 2), (-2, 0, 2))
    assert "dilation 2x2" in g.describe()
    pool = slide_geometry(model.layers[4], (4, 4))
    assert pool.strides == (2, 2) and pool.output_size == (2, 2) and pool.pads == ((0, 0), (0, 0))
    assert pool.window(1, 1) == ((2, 3), (2, 3))
    exact = slide_geometry(L.MaxPooling2D(2, padding="same", name="p"), (4, 4))
    assert exact.pads == ((0, 0), (0, 0)) and "no zeros needed here" in exact.describe()


def test_a_layer_that_does_not_slide_is_named():
    with pytest.raises(ValueError, match="'dense' \\(Dense\\) does not slide"):
        slide_geometry(L.Dense(3, name="dense"), (4, 4))
    with pytest.raises(ValueError, match="outside the 5x5 output"):
        slide_geometry(sliding_model().layers[0], (9, 10)).window(5, 0)
