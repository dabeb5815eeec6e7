"""The Keras-like Sequential API: weights, save/load, activations, saliency, input checks."""

import json

import numpy as np
import pytest

from visualcnn.engine import Sequential, layers as L, load_model, model_from_json, optimizers


def small_cnn(seed=0):
    m = Sequential([L.Input(shape=(8, 8, 1)), L.Conv2D(4, 3, activation="relu"), L.BatchNormalization(),
                    L.MaxPooling2D(2), L.Flatten(), L.Dropout(0.2), L.Dense(10, activation="softmax")], seed=seed)
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def data(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 8, 8, 1)).astype(np.float32), rng.integers(0, 10, n)


def test_weights_in_keras_order_and_layouts():
    m = small_cnn()
    shapes = [w.shape for w in m.get_weights()]
    assert shapes == [(3, 3, 1, 4), (4,), (4,), (4,), (4,), (4,), (36, 10), (10,)]
    assert [w.shape for w in m.trainable_weights] == [(3, 3, 1, 4), (4,), (4,), (4,), (36, 10), (10,)]
    assert m.count_params() == sum(w.size for w in m.get_weights())
    new = [np.full_like(w, 0.5) for w in m.get_weights()]
    m.set_weights(new)
    assert all((w == 0.5).all() for w in m.get_weights())
    with pytest.raises(ValueError, match="has 8 weight arrays, received 1"):
        m.set_weights(new[:1])
    with pytest.raises(ValueError, match=r"conv2d/kernel expects shape \(3, 3, 1, 4\)"):
        m.set_weights([np.zeros((3, 3, 1, 5))] + new[1:])


def test_compute_gradients_shapes_and_no_side_effects():
    m = small_cnn()
    x, y = data()
    before = m.get_weights()
    loss, grads = m.compute_gradients(x, y)
    assert np.isfinite(loss)
    assert [g.shape for g in grads] == [w.shape for w in m.trainable_weights]
    for a, b in zip(before, m.get_weights()):
        np.testing.assert_array_equal(a, b)  # neither weights nor moving statistics change


def test_train_on_batch_evaluate_predict():
    m = small_cnn()
    x, y = data(32)
    first = m.train_on_batch(x, y)
    for _ in range(30):
        last = m.train_on_batch(x, y)
    assert last[0] < first[0]
    loss, acc = m.evaluate(x, y)
    assert 0.0 <= acc <= 1.0 and np.isfinite(loss)
    p = m.predict(x, batch_size=5)
    assert p.shape == (32, 10)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    assert m.evaluate(x, y, return_dict=True).keys() == {"loss", "accuracy"}


def test_activations_and_input_gradients():
    m = small_cnn()
    x, _ = data(2)
    acts = m.activations(x)
    assert list(acts) == [layer.name for layer in m.layers]
    assert acts["conv2d"].shape == (2, 6, 6, 4) and acts["dense"].shape == (2, 10)
    np.testing.assert_allclose(acts["dense"], m.predict(x), rtol=1e-6)
    g = m.input_gradients(x[:1], 3)
    assert g.shape == (1, 8, 8, 1) and np.abs(g).sum() > 0
    with pytest.raises(ValueError, match="class_index must be an integer from 0 to 9"):
        m.input_gradients(x, 10)


def test_save_and_load_round_trip(tmp_path):
    m = small_cnn()
    x, y = data(32)
    m.fit(x, y, epochs=2, batch_size=8, verbose=0)
    path = tmp_path / "trained.json"
    m.save(path)
    doc = json.loads(path.read_text())
    assert doc["format"] == "visualcnn.model" and "weights" in doc and doc["training"]["optimizer"] == "adam"
    loaded = load_model(path)
    for a, b in zip(m.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(loaded.predict(x), m.predict(x), rtol=1e-6)
    assert loaded.evaluate(x, y) == pytest.approx(m.evaluate(x, y))


def test_model_from_json_is_trainable():
    m = small_cnn()
    clone = model_from_json(m.to_json())
    clone.compile(optimizer=optimizers.SGD(0.1, momentum=0.9), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    x, y = data(16)
    history = clone.fit(x, y, epochs=1, verbose=0)
    assert set(history.history) == {"loss", "accuracy"}


@pytest.mark.parametrize("x,message", [
    (np.zeros((4, 8, 8, 3)), r"x has shape \(4, 8, 8, 3\); the model expects \(N, 8, 8, 1\)"),
    (np.zeros((4, 8, 8, 1), dtype=object), "x must hold real numbers"),
    (np.full((4, 8, 8, 1), np.nan), "x contains NaN"),
    (np.zeros((0, 8, 8, 1)), "x is empty"),
])
def test_bad_x_is_a_clear_value_error(x, message):
    m = small_cnn()
    with pytest.raises(ValueError, match=message):
        m.fit(x, np.zeros(len(x), int), verbose=0)


@pytest.mark.parametrize("x,message", [
    (np.full((1, 8, 8, 1), np.inf, np.float32), "x contains NaN"),  # the float32 fast path
    (np.full((1, 8, 8, 1), np.nan, np.float32), "x contains NaN"),
    (np.zeros((1, 8, 8, 3), np.float32), r"x has shape \(1, 8, 8, 3\); the model expects"),
    (np.zeros((0, 8, 8, 1), np.float32), "x is empty"),
    (np.zeros((1, 8, 8), np.float32), None),  # (N, 8, 8) images: reshaped
    (np.zeros((2, 8, 8, 1), np.float32)[::2], None),  # a strided view: copied
])
def test_predict_checks_float32_input(x, message):
    m = small_cnn()
    if message is None:
        assert m.predict(x).shape == (x.shape[0], 10)
        return
    with pytest.raises(ValueError, match=message):
        m.predict(x)


def test_bad_labels_are_clear_value_errors():
    m = small_cnn()
    x, _ = data(4)
    with pytest.raises(ValueError, match=r"label 12, outside 0..9"):
        m.fit(x, np.array([0, 1, 2, 12]), verbose=0)
    with pytest.raises(ValueError, match="y has 3 entries but x has 4 examples"):
        m.fit(x, np.array([0, 1, 2]), verbose=0)
    with pytest.raises(ValueError, match="integer class labels"):
        m.fit(x, np.array([0.5, 1, 2, 3]), verbose=0)
    m2 = Sequential([L.Input(shape=(8, 8, 1)), L.Flatten(), L.Dense(10)])
    with pytest.raises(ValueError, match="compile the model first"):
        m2.fit(x, np.zeros(4), verbose=0)
    # (N, 28, 28)-style images without the channel axis are accepted for a 1-channel input
    assert m.predict(x[..., 0]).shape == (4, 10)


# --- robustness: NaN/inf never reach the weights, one training thread, empty models ----------

@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), 0.0, -1e-3])
def test_bad_learning_rates_are_refused_everywhere(bad):
    for make in (optimizers.Adam, optimizers.SGD, optimizers.RMSprop):
        with pytest.raises(ValueError, match="learning_rate must be a positive number"):
            make(learning_rate=bad)
    m = small_cnn()
    with pytest.raises(ValueError, match="learning_rate must be a positive number"):
        m.compile(optimizer=optimizers.get("adam", learning_rate=bad), loss="sparse_categorical_crossentropy")
    opt = optimizers.Adam(learning_rate=0.01)
    with pytest.raises(ValueError, match="learning_rate must be a positive number"):
        opt.learning_rate = bad
    assert opt.learning_rate == 0.01


def test_set_weights_refuses_values_that_overflow_float32():
    m = small_cnn()
    before = m.get_weights()
    huge = [w.astype(np.float64) for w in before]
    huge[0][0, 0, 0, 0] = 1e300  # finite in float64, inf once stored as float32
    with pytest.raises(ValueError, match="conv2d/kernel holds values too large for float32"):
        m.set_weights(huge)
    nan = [w.copy() for w in before]
    nan[-1][0] = np.nan
    with pytest.raises(ValueError, match="must hold finite numbers"):
        m.set_weights(nan)
    assert all(np.array_equal(a, b) for a, b in zip(before, m.get_weights()))


def test_an_update_that_overflows_keeps_the_last_good_weights():
    from visualcnn.engine.training import TrainingDiverged

    m = Sequential([L.Input(shape=(8, 8, 1)), L.Flatten(), L.Dense(10, activation="softmax")])
    m.compile(optimizer=optimizers.SGD(learning_rate=1e38), loss="sparse_categorical_crossentropy")
    x, y = data()
    good = [m.get_weights()]

    class Keep:
        def on_train_batch_end(self, batch, logs):
            good.append(m.get_weights())

    with pytest.raises(TrainingDiverged, match="last good step are kept"):
        m.fit(x, y, batch_size=4, epochs=3, verbose=0, callbacks=[Keep()])
    after = m.get_weights()
    assert all(np.isfinite(w).all() for w in after)
    assert all(np.array_equal(a, b) for a, b in zip(good[-1], after))


def test_train_on_batch_never_stores_an_overflowed_update():
    from visualcnn.engine.training import TrainingDiverged

    m = Sequential([L.Input(shape=(4,)), L.Dense(2)])
    m.compile(optimizer=optimizers.SGD(learning_rate=3e38), loss="mean_squared_error")
    x = np.full((2, 4), 1e3, np.float32)
    y = np.full((2, 2), -1e3, np.float32)
    before = m.get_weights()
    with pytest.raises(TrainingDiverged, match="update made a weight NaN or infinite"):
        m.train_on_batch(x, y)
    assert all(np.array_equal(a, b) for a, b in zip(before, m.get_weights()))


@pytest.mark.parametrize("bad_value", [np.nan, np.inf])
def test_a_non_finite_gradient_never_reaches_the_weights(monkeypatch, bad_value):
    """No pass of its own looks at the gradients: the update's check catches them (every
    rule carries a NaN or an infinity into the weight) and the step is taken back."""
    from visualcnn.engine.training import TrainingDiverged

    m = small_cnn()
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = data()
    m.train_on_batch(x, y)
    before = m.get_weights()
    original = type(m)._gradients

    def poisoned(self, ctxs):
        grads = original(self, ctxs)
        grads[0].reshape(-1)[3] = bad_value
        return grads

    monkeypatch.setattr(type(m), "_gradients", poisoned)
    with pytest.raises(TrainingDiverged, match="a gradient became NaN or infinite"):
        m.train_on_batch(x, y)
    assert all(np.array_equal(a, b) for a, b in zip(before, m.get_weights()))
    monkeypatch.undo()
    m.train_on_batch(x, y)  # and training goes on from the kept weights
    assert all(np.isfinite(w).all() for w in m.get_weights())


def test_a_second_thread_cannot_train_the_same_model():
    import threading

    m = small_cnn()
    x, y = data(64)
    inside, release = threading.Event(), threading.Event()

    class Hold:
        def on_train_batch_end(self, batch, logs):
            inside.set()
            release.wait(30)

    errors = []
    first = threading.Thread(target=lambda: m.fit(x, y, batch_size=8, verbose=0, callbacks=[Hold()]))
    first.start()
    try:
        assert inside.wait(60)
        for call in (lambda: m.fit(x, y, batch_size=8, verbose=0), lambda: m.train_on_batch(x[:4], y[:4]),
                     lambda: m.set_weights(m.get_weights()), m.build):
            second = threading.Thread(target=lambda c=call: _record(errors, c))
            second.start()
            second.join(60)
    finally:
        release.set()
        first.join(60)
    assert len(errors) == 4
    assert all(isinstance(e, ValueError) and "another thread" in str(e) for e in errors), errors
    m.fit(x, y, batch_size=8, verbose=0)  # free again once the first run ended


def _record(errors, call):
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - the test inspects it
        errors.append(exc)


def test_a_model_with_only_an_input_gives_a_clear_error():
    m = Sequential([L.Input(shape=(8, 8, 1))])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = data(4)
    for call in (lambda: m.fit(x, y, verbose=0), lambda: m.train_on_batch(x, y), lambda: m.evaluate(x, y),
                 lambda: m.compute_gradients(x, y), lambda: m.input_gradients(x, 0)):
        with pytest.raises(ValueError, match="only an Input and no layers"):
            call()


@pytest.mark.parametrize("make", [
    lambda: optimizers.Adam(epsilon=float("nan")), lambda: optimizers.Adam(beta_1=float("nan")),
    lambda: optimizers.RMSprop(rho=float("nan")), lambda: optimizers.RMSprop(momentum=float("inf")),
    lambda: optimizers.RMSprop(epsilon=-1.0), lambda: optimizers.SGD(momentum=float("nan")),
])
def test_optimizer_settings_that_would_write_nan_are_refused(make):
    with pytest.raises(ValueError, match="must be"):
        make()
