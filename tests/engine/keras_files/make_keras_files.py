"""Regenerate the real-Keras model files in this folder (not needed to run the tests).

    pip install keras torch h5py
    KERAS_BACKEND=torch PYTHONPATH=. python tests/engine/keras_files/make_keras_files.py

Builds four models in REAL Keras 3 (the seed CNN and LeNet-5 from resources/presets, a small
Functional residual net, an Inception-like net with parallel branches), trains each briefly on the
first 800 MNIST training digits (so BatchNormalization's moving statistics and every weight differ
from their initial values), and saves each as Keras saves it:

    NAME.keras       keras.saving.save_model (the zip: config.json, metadata.json, model.weights.h5)
    NAME.h5          model.save("NAME.h5"): Keras 3's legacy HDF5 format (model_config + model_weights)
                     (all but the seed CNN: the size budget)
    NAME.weights.h5  model.save_weights: Keras 3's weights-only file (the residual and Inception-like nets)

predictions.npz holds the test images ("x", a few digits of the MNIST test set, x/255 float32)
and Keras's predictions on them ("NAME"), plus Keras's predictions on the first 1,000 test
digits ("NAME_1000"; the tests read those digits from resources/mnist). unsupported.keras and
unsupported.h5 hold a model with an LSTM layer, which VisualCNN does not have (the refusal test).

The whole folder stays under 2 MB: the seed CNN alone is 122k weights (0.5 MB a file). The
residual net's files keep Adam's state (as most real files do); the others are saved without it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
TRAIN_IMAGES = 800
FIXTURE_IMAGES = 8
PRESETS = ROOT / "resources" / "presets"
# The .weights.h5 file of the two big models would take the folder over 2 MB.
WEIGHTS_FILES = ("residual", "inception")
# The seed CNN is the largest (0.5 MB a file): it is kept as .keras only (the other three have .h5).
LEGACY_H5_FILES = ("lenet5", "residual", "inception")
EPOCHS = {"seed_cnn": 3, "lenet5": 3, "residual": 8, "inception": 6}
LEARNING_RATE = {"residual": 1e-2}  # its global average of 16 maps learns slowly at 1e-3


def mnist():
    sys.path.insert(0, str(ROOT))
    from visualcnn.engine.datasets import load_mnist

    (x_train, y_train), (x_test, y_test) = load_mnist(ROOT / "resources" / "mnist", cache=False)
    scale = lambda x: (x.astype("float32") / 255.0)[..., None]  # noqa: E731
    return scale(x_train[:TRAIN_IMAGES]), y_train[:TRAIN_IMAGES], scale(x_test[:1000]), y_test[:1000]


def from_preset(name: str) -> keras.Model:
    """The preset's layers built with the Keras classes of the same names and arguments."""
    data = json.loads((PRESETS / f"{name}.json").read_text())
    stack = [keras.Input(shape=tuple(data["input_shape"]))]
    stack += [getattr(layers, entry["class_name"])(**entry["config"]) for entry in data["layers"]]
    return keras.Sequential(stack, name=data["name"])


def residual() -> keras.Model:
    inputs = keras.Input(shape=(28, 28, 1), name="image")
    x = layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False)(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    skip = x
    y = layers.Conv2D(16, 3, padding="same", use_bias=False)(x)
    y = layers.BatchNormalization()(y)
    y = layers.ReLU()(y)
    y = layers.Conv2D(16, 3, padding="same")(y)
    y = layers.BatchNormalization(momentum=0.9)(y)
    x = layers.Add()([y, skip])
    x = layers.ReLU()(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="residual")


def inception() -> keras.Model:
    inputs = keras.Input(shape=(28, 28, 1))
    x = layers.Conv2D(8, 3, activation="relu")(inputs)
    x = layers.MaxPooling2D()(x)
    a = layers.Conv2D(4, 1, activation="relu")(x)
    b = layers.Conv2D(4, 1, activation="relu")(x)
    b = layers.Conv2D(6, 3, padding="same", activation="relu")(b)
    c = layers.Conv2D(2, 1, activation="relu")(x)
    c = layers.Conv2D(4, 5, padding="same", activation="relu")(c)
    d = layers.MaxPooling2D(3, strides=1, padding="same")(x)
    d = layers.Conv2D(4, 1, activation="relu")(d)
    x = layers.Concatenate()([a, b, c, d])
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(8, 3, activation="relu")(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.25)(x)
    outputs = layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="inception")


def unsupported() -> keras.Model:
    inputs = keras.Input(shape=(28, 28, 1))
    x = layers.Reshape((28, 28))(inputs)
    x = layers.LSTM(8, name="lstm")(x)
    outputs = layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="with_lstm")


def without_optimizer_state(model: keras.Model) -> keras.Model:
    """The trained model, compiled again with a fresh (unbuilt) optimizer: the files keep the
    compile settings but not Adam's moments. The residual net keeps its optimizer state, so one
    model of each kind of file carries it, as most real files do."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    copy.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return copy


def main() -> None:
    keras.utils.set_random_seed(12)
    x_train, y_train, x_1000, y_1000 = mnist()
    x = x_1000[:FIXTURE_IMAGES]
    saved = {"x": x}
    models = {"seed_cnn": from_preset("seed_cnn"), "lenet5": from_preset("lenet5"),
              "residual": residual(), "inception": inception()}
    for name, model in models.items():
        model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE.get(name, 1e-3)),
                      loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        model.fit(x_train, y_train, batch_size=32, epochs=EPOCHS[name], verbose=0)
        if name != "residual":  # keep the folder small: Adam's two moments would triple the file
            model = without_optimizer_state(model)
        model.save(HERE / f"{name}.keras")
        if name in LEGACY_H5_FILES:
            model.save(HERE / f"{name}.h5")
        if name in WEIGHTS_FILES:
            model.save_weights(HERE / f"{name}.weights.h5")
        saved[name] = np.asarray(model.predict(x, verbose=0), dtype=np.float32)
        saved[f"{name}_1000"] = np.asarray(model.predict(x_1000, verbose=0), dtype=np.float32)
        print(f"{name}: {model.count_params():,} weights, accuracy on the first 1,000 test digits "
              f"{(saved[f'{name}_1000'].argmax(1) == y_1000).mean():.3f}")
    model = unsupported()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.save(HERE / "unsupported.keras")
    model.save(HERE / "unsupported.h5")
    np.savez_compressed(HERE / "predictions.npz", **saved)
    total = sum(path.stat().st_size for path in HERE.iterdir() if path.is_file())
    print(f"folder: {total / 1e6:.2f} MB; keras {keras.__version__}, backend {keras.backend.backend()}")


if __name__ == "__main__":
    main()
