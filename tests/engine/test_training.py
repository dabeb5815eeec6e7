"""Training loop: learning on real MNIST, validation split, the report generator, NaN stop."""

import dataclasses

import numpy as np
import pytest

from visualcnn.engine import Sequential, layers as L
from visualcnn.engine.datasets import load_mnist
from visualcnn.engine.training import EpochReport, StepReport, TrainingDiverged, check_classifier, train


@pytest.fixture(scope="module")
def mnist_small():
    (x, y), (xt, yt) = load_mnist()
    return (x[:2000, ..., None] / 255.0).astype(np.float32), y[:2000], (xt[:1000, ..., None] / 255.0), yt[:1000]


def cnn(seed=0):
    m = Sequential([L.Input(shape=(28, 28, 1)), L.Conv2D(8, 3, activation="relu"), L.MaxPooling2D(2),
                    L.Flatten(), L.Dense(10, activation="softmax")], seed=seed)
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def test_fit_learns_mnist_subset(mnist_small):
    x, y, xt, yt = mnist_small
    m = cnn()
    history = m.fit(x, y, batch_size=32, epochs=2, validation_split=0.1, verbose=0)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert history.history["loss"][1] < history.history["loss"][0]
    _, accuracy = m.evaluate(xt, yt)
    assert accuracy > 0.8  # chance is 0.1


def test_same_seed_same_result(mnist_small):
    x, y, _, _ = mnist_small
    runs = []
    for _ in range(2):
        m = cnn(seed=5)
        m.fit(x[:300], y[:300], batch_size=50, epochs=1, verbose=0)
        runs.append(m.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_validation_split_takes_last_fraction_before_shuffling():
    m = Sequential([L.Input(shape=(2,)), L.Dense(2, activation="softmax")])
    m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x = np.zeros((10, 2), np.float32)
    x[8:] = np.nan  # only the validation part is bad: proves which rows are validation
    with pytest.raises(ValueError, match="NaN"):
        train(m, x, np.zeros(10, int), validation_split=0.2)
    run = train(m, np.zeros((10, 2)), np.zeros(10, int), validation_split=0.2, batch_size=3)
    assert run.train_examples == 8 and run.val_examples == 2 and run.batches == 3


def test_generator_reports_are_immutable_and_stoppable(mnist_small):
    x, y, _, _ = mnist_small
    m = cnn()
    run = train(m, x[:256], y[:256], batch_size=64, epochs=2)
    first = next(run)
    assert isinstance(first, StepReport) and (first.epoch, first.batch, first.batches) == (1, 1, 4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.loss = 0.0
    reports = [next(run) for _ in range(4)]
    assert isinstance(reports[-1], EpochReport) and reports[-1].images_per_second > 0
    run.close()  # stop between batches; the model is free again
    m.train_on_batch(x[:8], y[:8])


def test_nan_loss_stops_and_keeps_last_good_weights(mnist_small):
    x, y, _, _ = mnist_small
    m = cnn()
    m.fit(x[:64], y[:64], batch_size=32, verbose=0)
    good = m.get_weights()
    m.layers[-1].weights[0][0, 0] = np.inf  # a step that would produce a NaN loss
    poisoned = m.get_weights()
    with pytest.raises(TrainingDiverged, match="training stopped at epoch 1, batch 1: the loss became nan"):
        m.fit(x[:64], y[:64], batch_size=32, verbose=0)
    for a, b in zip(poisoned, m.get_weights()):
        np.testing.assert_array_equal(a, b)  # the failing step changed nothing
    assert len(good) == len(poisoned)


def test_check_classifier_messages():
    ok = cnn()
    assert check_classifier(ok) is None
    wrong_units = Sequential([L.Input(shape=(28, 28, 1)), L.Flatten(), L.Dense(8, activation="softmax")])
    assert "set its units to 10" in check_classifier(wrong_units)
    no_softmax = Sequential([L.Input(shape=(28, 28, 1)), L.Flatten(), L.Dense(10)])
    assert "set activation='softmax'" in check_classifier(no_softmax)
    spatial = Sequential([L.Input(shape=(28, 28, 1)), L.Conv2D(10, 3, activation="softmax")])
    assert "add Flatten" in check_classifier(spatial)


def test_a_run_keeps_the_garbage_collector_off_what_outlives_it(mnist_small):
    """A full collection walks every object holding the GIL (~33 ms with numba loaded, one
    stalled step): a run freezes what is alive at its start, still collects what its steps
    create, and thaws at the end what it froze, leaving a freeze made before it alone."""
    import gc

    x, y, _, _ = mnist_small
    frozen_before = gc.get_freeze_count()
    gc.unfreeze()
    try:
        m = cnn()
        survivor = [object() for _ in range(1000)]
        gc.collect()
        run = train(m, x[:256], y[:256], batch_size=64, epochs=1)
        next(run)
        assert gc.get_freeze_count() >= len(survivor)  # frozen while the run goes on
        garbage = []
        garbage.append(garbage)  # a cycle made during the run is still collected
        del garbage
        assert gc.collect() >= 1
        for _ in run:
            pass
        assert gc.get_freeze_count() == 0  # given back at the end

        gc.freeze()  # someone else's freeze (the window's) stays as it is
        held = gc.get_freeze_count()
        for _ in train(m, x[:128], y[:128], batch_size=64, epochs=1):
            pass
        assert gc.get_freeze_count() >= held > 0
    finally:
        gc.unfreeze()
        if frozen_before:
            gc.freeze()
