"""Memory known before it is spent: engine/memory.py and the refusals that use it."""

import time
import tracemalloc

import numpy as np
import pytest

from visualcnn.engine import Sequential, layers as L
from visualcnn.engine.memory import (MemoryLimitError, available_memory_bytes, check_memory, estimate_memory,
                                     format_bytes, memory_problem, optimizer_slots)

GIB = 1024 ** 3


def seed_cnn(conv_filters=32, dense_units=64):
    return Sequential([L.Input(shape=(28, 28, 1)), L.Conv2D(conv_filters, 3, activation="relu"), L.MaxPooling2D(),
                       L.Conv2D(64, 3, activation="relu"), L.MaxPooling2D(), L.Flatten(),
                       L.Dense(dense_units, activation="relu"), L.Dropout(0.5), L.Dense(10, activation="softmax")])


@pytest.fixture
def four_gib(monkeypatch):
    """A machine with 4 GiB free, whatever this one has."""
    monkeypatch.setenv("VISUALCNN_MEMORY_LIMIT", str(4 * GIB))


def test_per_layer_weights_and_activations_by_hand():
    m = Sequential([L.Input(shape=(4,)), L.Dense(3, activation="relu"), L.Dense(2)])
    est = estimate_memory(m.analyse(), 10, optimizer="sgd")
    first, second = est.layers
    assert (first.name, first.weight_bytes, first.activation_bytes) == ("dense", (4 * 3 + 3) * 4, 10 * 3 * 4)
    assert (second.weight_bytes, second.activation_bytes) == ((3 * 2 + 2) * 4, 10 * 2 * 4)
    assert est.weight_bytes == first.weight_bytes + second.weight_bytes
    assert est.batch_size == 10
    assert est.training_peak_bytes > est.inference_peak_bytes > est.weight_bytes


def test_training_peak_grows_with_batch_and_optimizer_state():
    report = seed_cnn().analyse()
    small, big = estimate_memory(report, 32), estimate_memory(report, 256)
    assert big.training_peak_bytes > 4 * small.training_peak_bytes / 2
    assert big.weight_bytes == small.weight_bytes
    adam = estimate_memory(report, 32, optimizer="adam")
    sgd = estimate_memory(report, 32, optimizer="sgd")
    trainable = report.trainable_params * 4
    assert adam.training_peak_bytes - sgd.training_peak_bytes == 2 * trainable
    assert (optimizer_slots("adam"), optimizer_slots("rmsprop"), optimizer_slots("rmsprop", 0.9),
            optimizer_slots("sgd"), optimizer_slots("sgd", 0.9)) == (2, 1, 2, 0, 1)


def test_rows_with_errors_count_nothing_and_do_not_raise():
    m = Sequential([L.Input(shape=(4, 4, 1)), L.Conv2D(2, 9), L.Dense(3)])
    report = m.analyse()
    assert report.error
    est = estimate_memory(report, 8)
    assert [(r.weight_bytes, r.activation_bytes) for r in est.layers] == [(0, 0), (0, 0)]


@pytest.mark.parametrize("model, culprit, knob", [
    (seed_cnn(dense_units=1_000_000), "dense", "units"),
    (seed_cnn(conv_filters=20_000), "conv2d", "filters"),
    (seed_cnn(conv_filters=10 ** 7), "conv2d", "filters"),
])
def test_huge_models_are_refused_with_the_numbers_and_what_to_reduce(four_gib, model, culprit, knob):
    with pytest.raises(MemoryLimitError) as info:
        check_memory(estimate_memory(model.analyse(), 64))
    message = str(info.value)
    assert "GiB" in message and "4.0 GiB available" in message
    assert f"{culprit}'s {knob}" in message
    assert "\n" not in message
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("model", [seed_cnn(dense_units=1_000_000), seed_cnn(conv_filters=10 ** 7)])
def test_build_fit_predict_refuse_before_allocating(four_gib, model):
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = np.zeros((2, 28, 28, 1), np.float32), np.zeros(2, np.int64)
    warm = Sequential([L.Input(shape=(28, 28, 1)), L.Flatten(), L.Dense(10, activation="softmax")])
    warm.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    warm.fit(x, y, verbose=0)  # the engine's imports are not what is measured
    tracemalloc.start()
    try:
        started = time.perf_counter()
        for call in (model.build, lambda: model.fit(x, y, verbose=0), lambda: model.predict(x)):
            with pytest.raises(MemoryLimitError, match="available"):
                call()
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 1024 ** 2, f"allocated {format_bytes(peak)} before refusing"
    assert not model.built
    assert elapsed < 30  # generous: what matters is that nothing was allocated


def test_fit_refuses_a_batch_that_cannot_fit(monkeypatch):
    m = seed_cnn()
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    m.build()
    need = estimate_memory(m.analyse(), 4096).training_peak_bytes
    monkeypatch.setenv("VISUALCNN_MEMORY_LIMIT", str(need // 4))
    x, y = np.zeros((4096, 28, 28, 1), np.float32), np.zeros(4096, np.int64)
    with pytest.raises(MemoryLimitError, match="batch size"):
        m.fit(x, y, batch_size=4096, verbose=0)
    m.fit(x[:8], y[:8], batch_size=4096, verbose=0)  # 8 examples: the batch really used is 8
    m.fit(x[:8], y[:8], batch_size=4, verbose=0)


def test_available_memory_is_positive_and_overridable(monkeypatch):
    monkeypatch.delenv("VISUALCNN_MEMORY_LIMIT", raising=False)
    real = available_memory_bytes()
    assert 0 < real < 1 << 62
    monkeypatch.setenv("VISUALCNN_MEMORY_LIMIT", "123456789")
    assert available_memory_bytes() == 123456789


def test_memory_problem_is_none_when_it_fits():
    est = estimate_memory(seed_cnn().analyse(), 64)
    assert memory_problem(est, available=est.training_peak_bytes * 2) is None
    assert memory_problem(est, available=est.training_peak_bytes // 2) is not None
    assert memory_problem(est, training=False, available=est.inference_peak_bytes * 2) is None


@pytest.mark.parametrize("n, text", [(0, "0 B"), (512, "512 B"), (1536, "1.5 KiB"), (1.2 * 1024 ** 2, "1.2 MiB"),
                                     (25.3 * GIB, "25.3 GiB")])
def test_format_bytes(n, text):
    assert format_bytes(n) == text


ARCHITECTURES = {
    "seed_cnn": seed_cnn,
    "bn_separable_dropout": lambda: Sequential([
        L.Input(shape=(28, 28, 1)), L.Conv2D(16, 3, padding="same"), L.BatchNormalization(), L.Activation("relu"),
        L.SeparableConv2D(32, 3, activation="tanh"), L.MaxPooling2D(), L.Dropout(0.3), L.Flatten(),
        L.Dense(10, activation="softmax")]),
    "mlp": lambda: Sequential([L.Input(shape=(28, 28, 1)), L.Flatten(), L.Dense(512, activation="relu"),
                               L.Dropout(0.2), L.Dense(10, activation="softmax")]),
}


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_estimate_is_close_to_what_training_allocates(name):
    """The estimate against numpy's own allocations (tracemalloc) over a real training run."""
    make = ARCHITECTURES[name]
    m = make()
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.random((128, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, 128)
    warm = make()  # compile the kernels outside the measurement
    warm.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    warm.fit(x[:64], y[:64], batch_size=64, verbose=0)  # same batch: same kernels
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        m.fit(x, y, batch_size=64, epochs=1, verbose=0)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    estimate = estimate_memory(m.analyse(), 64, optimizer="adam").training_peak_bytes
    assert 0.75 < estimate / peak < 1.35, (format_bytes(estimate), format_bytes(peak))


def test_advice_points_at_a_dense_layers_input_when_its_units_are_few():
    m = Sequential([L.Input(shape=(28, 28, 1)), L.Conv2D(10 ** 6, 3), L.Flatten(), L.Dense(10, activation="softmax")])
    problem = memory_problem(estimate_memory(m.analyse(), 1), training=False, available=GIB)
    assert problem.startswith("Building this model needs about")
    assert "reduce the size of dense's input (fewer filters, or pooling before Flatten)" in problem


def test_the_margin_is_explained_when_it_decides():
    est = estimate_memory(seed_cnn().analyse(), 64)
    problem = memory_problem(est, available=int(est.training_peak_bytes * 1.05))
    assert problem is not None and "can spare" in problem and "available" in problem
    held = est.training_peak_bytes  # a built model's own arrays are not free memory, but are its to use
    assert memory_problem(est, available=est.training_peak_bytes // 2, already_allocated=held) is None


def test_evaluate_activations_and_saliency_check_their_batch(monkeypatch):
    m = seed_cnn()
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    m.build()
    x, y = np.zeros((512, 28, 28, 1), np.float32), np.zeros(512, np.int64)
    need = estimate_memory(m.analyse(), 512).inference_peak_bytes
    monkeypatch.setenv("VISUALCNN_MEMORY_LIMIT", str(need // 3))
    for call in (lambda: m.evaluate(x, y, batch_size=512, verbose=0), lambda: m.activations(x),
                 lambda: m.input_gradients(x, 3)):
        with pytest.raises(MemoryLimitError, match="available"):
            call()
    assert m.evaluate(x[:4], y[:4], batch_size=512, verbose=0) is not None


@pytest.mark.parametrize("conv, pool, image", [
    (dict(filters=8, kernel_size=3, activation="relu"), dict(pool_size=2), (28, 28, 1)),          # the seed CNN
    (dict(filters=8, kernel_size=3, activation="relu"), dict(pool_size=2), (27, 27, 3)),          # odd: 25x25
    (dict(filters=8, kernel_size=3, activation="relu", padding="same"), dict(pool_size=2, padding="same"),
     (11, 12, 1)),                                                                                   # padded pool
    (dict(filters=8, kernel_size=3, activation="relu"), dict(pool_size=3, strides=2), (20, 20, 1)),
    (dict(filters=8, kernel_size=3, activation="relu", strides=(1, 2)), dict(pool_size=2), (20, 20, 1)),
    (dict(filters=8, kernel_size=3, activation="relu"), dict(pool_size=2), (20, 20, 5)),          # 5 channels
    (dict(filters=8, kernel_size=5, activation="relu"), dict(pool_size=2), (20, 20, 1)),
    (dict(filters=8, kernel_size=3, activation="tanh"), dict(pool_size=2), (20, 20, 1)),
])
def test_estimate_knows_when_the_first_conv_runs_the_pool(conv, pool, image):
    """The estimate decides from shapes, before anything is built, what the built layers
    decide from their kernel plan: the same answer both ways, and training then allocates
    neither the conv's output (forward) nor the pool's input gradient (backward)."""
    m = Sequential([L.Input(shape=image), L.Conv2D(**conv), L.MaxPooling2D(**pool), L.Flatten(), L.Dense(3)])
    report = m.analyse()
    first = report.rows[0]
    expected = first.layer.pool_takes_over(first.input_shape, first.inference.output_shape, m.layers[1])
    m.compile(optimizer="sgd", loss="mse")
    m.build()
    conv_layer, pool_layer = m.layers[0], m.layers[1]
    built = (conv_layer.takes_pooled_forward(pool_layer), conv_layer.takes_pooled_gradient())
    assert expected == built
    rng = np.random.default_rng(1)
    m.train_on_batch(rng.standard_normal((2, *image)).astype(np.float32), rng.standard_normal((2, 3)))
    conv_buffers = m._train_ctxs[0].ws._buffers
    assert ("layer.z" in conv_buffers) == (not built[0])
    assert ("layer.dx" in m._train_ctxs[1].ws._buffers) == (not built[1])


@pytest.mark.parametrize("conv, image, follower", [
    (dict(filters=8, kernel_size=3, activation="relu"), (20, 20, 1), "conv"),                   # masked
    (dict(filters=8, kernel_size=3, activation="relu", padding="same"), (11, 12, 3), "conv"),  # masked
    (dict(filters=8, kernel_size=3, activation="relu", strides=(1, 2)), (20, 20, 1), "conv"),  # sgemm gradient
    (dict(filters=8, kernel_size=3, activation="relu"), (20, 20, 5), "conv"),                   # 5 channels
    (dict(filters=8, kernel_size=3, activation="tanh"), (20, 20, 1), "conv"),
    (dict(filters=8, kernel_size=3, activation="relu"), (20, 20, 1), "pool"),                   # the pool's job
])
def test_estimate_knows_when_the_first_conv_masks_its_relu(conv, image, follower):
    """Shapes only (the estimate) and the built plan agree on whether a first conv's weight
    gradient applies its relu's derivative; training then allocates no dz for it."""
    after = L.Conv2D(4, 3) if follower == "conv" else L.MaxPooling2D(2)
    m = Sequential([L.Input(shape=image), L.Conv2D(**conv), after, L.Flatten(), L.Dense(3)])
    report = m.analyse()
    first = report.rows[0]
    expected = first.layer.relu_masked_in_gradient(first.input_shape)
    m.compile(optimizer="sgd", loss="mse")
    m.build()
    assert m.layers[0].masks_relu_in_gradient() == expected
    rng = np.random.default_rng(2)
    m.train_on_batch(rng.standard_normal((2, *image)).astype(np.float32), rng.standard_normal((2, 3)))
    with_dz = "layer.dz" in m._train_ctxs[0].ws._buffers
    assert with_dz == (follower == "conv" and not expected)  # after a pool, the pool applies relu' instead
