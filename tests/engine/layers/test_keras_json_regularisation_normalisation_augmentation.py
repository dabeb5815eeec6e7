"""A real Keras 3 Sequential holding every regularisation, normalisation and augmentation
layer (non-default arguments included) reads back from to_json() with Keras's shapes and
parameter counts, layer by layer."""

import numpy as np
from layer_checks import live_keras

from visualcnn.engine import model_io


def test_keras_to_json_reads_back_with_keras_shapes_and_params():
    keras = live_keras()
    K = keras.layers
    km = keras.Sequential([
        keras.Input((16, 16, 3)), K.RandomFlip("vertical", seed=3),
        K.RandomTranslation(0.1, (-0.2, 0.3), fill_mode="wrap"),
        K.RandomRotation(0.2, fill_mode="constant", fill_value=1.0), K.RandomZoom(0.1, interpolation="nearest"),
        K.RandomContrast(0.3, value_range=(0, 1)), K.GaussianNoise(0.1), K.Conv2D(8, 3),
        K.GroupNormalization(4), K.GroupNormalization(-1, center=False), K.SpatialDropout2D(0.2),
        K.LayerNormalization(axis=[1, 2, 3]), K.LayerNormalization(epsilon=1e-5), K.Flatten(), K.Dense(3)])
    model = model_io.model_from_json(km.to_json())
    rows = model.analyse().rows
    assert [r.layer.class_name for r in rows] == [kl.__class__.__name__ for kl in km.layers]
    for kl, row in zip(km.layers, rows):
        assert row.inference.output_shape == tuple(kl.output.shape), kl.name
        assert row.inference.params == kl.count_params(), kl.name
    # the built GroupNormalization(-1) is written with its channel count, as Keras does
    assert rows[8].layer.config["groups"] == 8
    x = np.random.default_rng(0).random((2, 16, 16, 3)).astype(np.float32)
    assert model.predict(x).shape == (2, 3)
