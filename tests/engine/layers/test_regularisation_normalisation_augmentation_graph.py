"""All nine regularisation, normalisation and augmentation layers inside one Functional
graph with forks (their outputs and gradients shared), after a Conv2D so that every
backward is used: weight gradients match central differences, training is reproducible
given the model seed."""

import numpy as np
from random_checks import fixed_randomness

from visualcnn.engine import Input, Model, layers as L

RANDOM = (L.RandomFlip, L.RandomTranslation, L.RandomRotation, L.RandomZoom, L.RandomContrast,
          L.GaussianNoise, L.SpatialDropout2D)


def _graph(seed=0) -> Model:
    inp = Input((8, 8, 2))
    # a Conv2D first, so the first weights' gradients pass back through every augmentation
    a = L.RandomFlip()(L.Conv2D(3, 3, padding="same", activation="tanh")(inp))
    a = L.RandomTranslation(0.2, 0.2, fill_mode="constant")(a)
    a = L.RandomRotation(0.1, fill_mode="wrap")(a)
    a = L.RandomZoom(0.2, interpolation="bilinear", fill_mode="nearest")(a)
    a = L.RandomContrast(0.3, value_range=(-100, 100))(a)
    b = L.Conv2D(4, 3, padding="same", activation="tanh")(a)
    left = L.GroupNormalization(2)(b)  # b forks: two consumers
    right = L.LayerNormalization()(L.Conv2D(4, 3, padding="same", activation="tanh")(b))
    s = L.Add()([left, right])
    s = L.SpatialDropout2D(0.3)(s)
    s = L.GaussianNoise(0.1)(s)
    out = L.Dense(3, activation="softmax")(L.Flatten()(s))
    model = Model(inp, out)
    model.seed = seed
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def _data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((6, 8, 8, 2)).astype(np.float32), rng.integers(0, 3, 6)


def test_weight_gradients_match_central_differences():
    model = _graph()
    for layer in model.layers:
        if isinstance(layer, RANDOM):
            fixed_randomness(layer, 5)  # one fixed transform per layer for every evaluation
    x, y = _data()
    loss, grads = model.compute_gradients(x, y)
    rng = np.random.default_rng(1)
    eps = 1e-2
    for w, g in zip(model.trainable_weights, grads):
        scale = max(float(np.abs(g).max()), 1e-3)
        flat, flat_g = w.reshape(-1), g.reshape(-1)
        for i in rng.choice(flat.size, size=min(6, flat.size), replace=False):
            old = flat[i]
            flat[i] = old + eps
            up, _ = model.compute_gradients(x, y)
            flat[i] = old - eps
            down, _ = model.compute_gradients(x, y)
            flat[i] = old
            assert abs((up - down) / (2 * eps) - flat_g[i]) <= 3e-2 * scale, (w.shape, i)


def test_training_is_reproducible_given_the_seed():
    x, y = _data()
    runs = []
    for _ in range(2):
        model = _graph(seed=3)
        model.fit(x, y, batch_size=3, epochs=2, verbose=0)
        runs.append([w.copy() for w in model.trainable_weights])
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
    assert _graph().predict(x).shape == (6, 3)
