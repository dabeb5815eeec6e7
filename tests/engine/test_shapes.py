"""Output shapes, parameter counts, derivations and receptive fields, as Keras computes them."""

import pytest

from visualcnn.engine import layers
from visualcnn.engine.analysis import analyse
from visualcnn.engine.shapes import same_padding

L = layers

# (layer, input shape without batch, Keras output shape, params, trainable params)
SHAPE_TABLE = [
    # the seed documents' examples
    (L.Conv2D(16, 2, strides=2), (200, 200, 1), (None, 100, 100, 16), 80, 80),
    (L.MaxPooling2D(2, 2), (100, 100, 15), (None, 50, 50, 15), 0, 0),
    (L.Conv2D(32, 3, activation="relu"), (28, 28, 1), (None, 26, 26, 32), 320, 320),
    (L.Conv2D(64, 3), (13, 13, 32), (None, 11, 11, 64), 18496, 18496),
    # padding, strides, dilation
    (L.Conv2D(8, 3, padding="same"), (28, 28, 3), (None, 28, 28, 8), 224, 224),
    (L.Conv2D(8, 3, strides=2, padding="same"), (7, 7, 1), (None, 4, 4, 8), 80, 80),
    (L.Conv2D(8, (3, 5), strides=(2, 1)), (10, 10, 1), (None, 4, 6, 8), 128, 128),
    (L.Conv2D(4, 3, dilation_rate=2), (10, 10, 1), (None, 6, 6, 4), 40, 40),
    (L.Conv2D(4, 3, dilation_rate=2, padding="same"), (10, 10, 1), (None, 10, 10, 4), 40, 40),
    (L.Conv2D(4, 3, use_bias=False), (5, 5, 2), (None, 3, 3, 4), 72, 72),
    # depthwise / separable / transpose
    (L.DepthwiseConv2D(3, depth_multiplier=2), (8, 8, 3), (None, 6, 6, 6), 60, 60),
    (L.SeparableConv2D(16, 3, depth_multiplier=2), (8, 8, 3), (None, 6, 6, 16), 54 + 96 + 16, 166),
    (L.Conv2DTranspose(8, 3), (7, 7, 4), (None, 9, 9, 8), 296, 296),
    (L.Conv2DTranspose(8, 3, strides=2), (7, 7, 4), (None, 15, 15, 8), 296, 296),
    (L.Conv2DTranspose(8, 3, strides=2, padding="same"), (7, 7, 4), (None, 14, 14, 8), 296, 296),
    (L.Conv2DTranspose(8, 2, strides=3), (7, 7, 4), (None, 21, 21, 8), 136, 136),
    (L.Conv2DTranspose(2, 3, strides=2, output_padding=1), (4, 4, 1), (None, 10, 10, 2), 20, 20),
    # pooling
    (L.MaxPooling2D(), (5, 5, 2), (None, 2, 2, 2), 0, 0),
    (L.MaxPooling2D(2, padding="same"), (5, 5, 2), (None, 3, 3, 2), 0, 0),
    (L.AveragePooling2D(3, strides=1), (5, 5, 2), (None, 3, 3, 2), 0, 0),
    (L.AveragePooling2D((2, 3), strides=(1, 2), padding="same"), (5, 5, 2), (None, 5, 3, 2), 0, 0),
    (L.GlobalAveragePooling2D(), (5, 5, 7), (None, 7), 0, 0),
    (L.GlobalMaxPooling2D(keepdims=True), (5, 5, 7), (None, 1, 1, 7), 0, 0),
    # core
    (L.Flatten(), (5, 5, 64), (None, 1600), 0, 0),
    (L.Dense(64), (1600,), (None, 64), 102464, 102464),
    (L.Dense(10, use_bias=False), (64,), (None, 10), 640, 640),
    (L.Dense(5), (7, 7, 64), (None, 7, 7, 5), 325, 325),
    (L.Dropout(0.5), (64,), (None, 64), 0, 0),
    (L.Activation("softmax"), (10,), (None, 10), 0, 0),
    (L.BatchNormalization(), (5, 5, 32), (None, 5, 5, 32), 128, 64),
    (L.BatchNormalization(center=False), (10,), (None, 10), 30, 10),
    (L.Dense(4, trainable=False), (3,), (None, 4), 16, 0),
]


@pytest.mark.parametrize("layer,input_shape,expected,params,trainable", SHAPE_TABLE,
                         ids=[f"{row[0].class_name}-{i}" for i, row in enumerate(SHAPE_TABLE)])
def test_shape_and_params(layer, input_shape, expected, params, trainable):
    inference = layer.infer((None, *input_shape))
    assert inference.output_shape == expected
    assert inference.params == params
    assert inference.trainable_params == trainable


def test_keras_mnist_cnn_totals():
    model_layers = [L.Conv2D(32, 3, activation="relu"), L.MaxPooling2D(2), L.Conv2D(64, 3, activation="relu"),
                    L.MaxPooling2D(2), L.Flatten(), L.Dense(64, activation="relu"), L.Dropout(0.5),
                    L.Dense(10, activation="softmax")]
    report = analyse((28, 28, 1), model_layers)
    assert [r.output_shape for r in report.rows] == [
        (None, 26, 26, 32), (None, 13, 13, 32), (None, 11, 11, 64), (None, 5, 5, 64), (None, 1600),
        (None, 64), (None, 64), (None, 10)]
    assert report.total_params == 121930 and report.trainable_params == 121930 and report.non_trainable_params == 0


def test_derivation_has_the_numbers_filled_in():
    lines = L.Conv2D(32, 3).infer((None, 28, 28, 1)).derivation
    assert "out_h = floor((28 - 1*(3-1) - 1) / 1) + 1 = 26" in lines
    assert "params = 3*3*1*32 + 32 = 320" in lines
    pool = L.MaxPooling2D(2).infer((None, 26, 26, 32)).derivation
    assert "out_h = floor((26 - 2) / 2) + 1 = 13" in pool
    dense = L.Dense(64).infer((None, 1600)).derivation
    assert "params = 1600*64 + 64 = 102,464" in dense
    same = L.Conv2D(4, 3, strides=2, padding="same").infer((None, 7, 7, 1)).derivation
    assert same[0].startswith("out_h = floor((7 - 1) / 2) + 1 = 4")


def test_receptive_field_and_jump_through_the_seed_cnn():
    report = analyse((28, 28, 1), [L.Conv2D(32, 3), L.MaxPooling2D(2), L.Conv2D(64, 3), L.MaxPooling2D(2),
                                   L.Flatten()])
    fields = [(r.inference.field.size[0], r.inference.field.jump[0]) for r in report.rows]
    # 3x3 conv: 3, jump 1; 2x2 pool: 3+1=4, jump 2; 3x3 conv: 4+2*2=8, jump 2; pool: 8+2=10, jump 4;
    # flatten sees all 5 positions: 10 + 4*4 = 26.
    assert fields == [(3, 1), (4, 2), (8, 2), (10, 4), (26, 4)]


def test_receptive_field_dilation_and_transpose():
    assert L.Conv2D(1, 3, dilation_rate=2).infer((None, 9, 9, 1)).field.size == (5, 5)
    t = L.Conv2DTranspose(1, 4, strides=2).infer((None, 4, 4, 1)).field
    assert t.jump == (0.5, 0.5) and t.size == (2, 2)


@pytest.mark.parametrize("size,k,s,d,expected", [
    (28, 3, 1, 1, (1, 1)), (28, 3, 2, 1, (0, 1)), (7, 2, 2, 1, (0, 1)), (5, 5, 1, 1, (2, 2)), (10, 3, 1, 2, (2, 2)),
])
def test_same_padding_puts_the_odd_pixel_at_the_end(size, k, s, d, expected):
    assert same_padding(size, k, s, d) == expected


def test_error_names_layer_and_reason_and_later_layers_are_unknown():
    report = analyse((28, 28, 1), [L.Conv2D(8, 40, name="conv2d"), L.MaxPooling2D(), L.Flatten()])
    assert [r.status for r in report.rows] == ["error", "unknown", "unknown"]
    assert report.error.startswith("Conv2D 'conv2d': kernel 40x40 does not fit the 28x28 input with valid padding")


def test_pool_too_big_and_image_layer_after_flatten():
    assert "pool 3x3 does not fit the 2x2 input" in analyse((2, 2, 1), [L.MaxPooling2D(3)]).error
    error = analyse((28, 28, 1), [L.Flatten(), L.Conv2D(4, 3)]).error
    assert "needs an image-shaped input" in error and "(None, 784)" in error


def test_field_start_tracks_same_padding_and_windows():
    report = analyse((28, 28, 1), [L.Conv2D(4, 3, padding="same"), L.MaxPooling2D(), L.Conv2D(4, 3),
                                   L.MaxPooling2D()])
    # 'same' keeps output (0, 0) centred on pixel 0; a 2x2 pool's first window is centred on 0.5;
    # a valid 3x3 conv's first output is centred on the middle of its window: 0.5 + 1*2 = 2.5.
    assert [r.inference.field.start[0] for r in report.rows] == [0, 0.5, 2.5, 3.5]
