"""Live: a model trained in real Keras right now, saved as .keras, legacy .h5 and .weights.h5,
opens in VisualCNN with Keras's predictions. Skipped where Keras is not installed (CI);
there test_keras_import.py checks the committed files Keras made.

Run with Keras: KERAS_BACKEND=torch python -m pytest tests/engine/test_keras_import_live.py
"""

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
pytest.importorskip("h5py")

from visualcnn.engine import load_model, load_model_file  # noqa: E402
from visualcnn.engine.datasets import load_mnist  # noqa: E402
from visualcnn.engine.layers import ConfigError  # noqa: E402

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def digits():
    (x, y), (x_test, _) = load_mnist()
    scale = lambda images: (images.astype(np.float32) / 255.0)[..., None]  # noqa: E731
    return scale(x[:192]), y[:192].astype(np.int64), scale(x_test[:64])


def functional_net() -> "keras.Model":
    layers = keras.layers
    inputs = keras.Input(shape=(28, 28, 1))
    x = layers.Conv2D(6, 3, strides=2, padding="same")(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    a = layers.Conv2D(4, 1, activation="relu")(x)
    b = layers.SeparableConv2D(4, 3, padding="same", activation="relu")(x)
    x = layers.Concatenate()([a, b])
    y = layers.DepthwiseConv2D(3, padding="same")(x)
    x = layers.Add()([x, y])
    x = layers.AveragePooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.2)(x)
    outputs = layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="live_functional")


def sequential_net() -> "keras.Model":
    layers = keras.layers
    return keras.Sequential([keras.Input(shape=(28, 28, 1)), layers.Conv2D(4, 5, activation="tanh"),
                             layers.MaxPooling2D(), layers.BatchNormalization(), layers.Flatten(),
                             layers.Dense(16, activation="relu"), layers.Dense(10, activation="softmax")],
                            name="live_sequential")


@pytest.mark.parametrize("build", [functional_net, sequential_net], ids=["functional", "sequential"])
def test_a_fresh_keras_model_opens_with_its_predictions(tmp_path, digits, build):
    x, y, x_test = digits
    keras.utils.set_random_seed(3)
    model = build()
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=32, epochs=2, verbose=0)  # BN statistics and every weight move
    expected = np.asarray(model.predict(x_test, verbose=0))
    model.save(tmp_path / "m.keras")
    model.save(tmp_path / "m.h5")
    model.save_weights(tmp_path / "m.weights.h5")
    for name in ("m.keras", "m.h5"):
        ours = load_model(tmp_path / name)
        assert np.abs(ours.predict(x_test) - expected).max() < TOLERANCE, name
        assert load_model_file(tmp_path / name).training.learning_rate == pytest.approx(3e-3)
    ours.set_weights([np.zeros_like(w) for w in ours.get_weights()])
    ours.load_weights(tmp_path / "m.weights.h5")
    assert np.abs(ours.predict(x_test) - expected).max() < TOLERANCE
    with pytest.raises(ConfigError, match="holds only weights"):
        load_model(tmp_path / "m.weights.h5")


def test_an_unsupported_keras_layer_is_named(tmp_path):
    inputs = keras.Input(shape=(28, 28, 1))
    x = keras.layers.Reshape((28, 28))(inputs)
    x = keras.layers.GRU(4, name="my_gru")(x)
    model = keras.Model(inputs, keras.layers.Dense(10)(x))
    model.save(tmp_path / "gru.h5")
    model.save(tmp_path / "gru.keras")
    for name in ("gru.h5", "gru.keras"):
        with pytest.raises(ConfigError, match=r"GRU \('my_gru'\)"):
            load_model(tmp_path / name)
