"""engine/recipe.py: the one MNIST training recipe of the CLI and the window."""

import math

import numpy as np
import pytest

from visualcnn.engine import Sequential, layers as L
from visualcnn.engine.memory import MemoryLimitError
from visualcnn.engine.recipe import (prepare_labels, prepare_run, readiness_problem, scale_images,
                                     set_learning_rate)
from visualcnn.engine.training import EpochReport, StepReport
from visualcnn.engine.training_config import TrainingConfig


def model(input_shape=(28, 28, 1), units=10, activation="softmax", extra=()):
    return Sequential([L.Input(shape=input_shape), *extra, L.Flatten(), L.Dense(units, activation=activation)])


def fake_mnist(n=1000, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, n).astype(np.uint8)
    return (x, y), (x[:50], y[:50])


@pytest.mark.parametrize("m, expected", [
    (model(input_shape=(32, 32, 1)), "set the input shape to [28, 28, 1]"),
    (model(units=64), "has 64 outputs, but MNIST has 10 digits: set its units to 10"),
    (model(activation="relu"), "set activation='softmax' on it"),
    (Sequential([L.Input(shape=(28, 28, 1))]), "no layers"),
    (Sequential([L.Input(shape=(28, 28, 1)), L.Conv2D(4, 3)]), "add Flatten"),
    (Sequential([L.Input(shape=(4, 4, 1)), L.Conv2D(2, 9)]), "does not fit"),
])
def test_readiness_names_what_to_change(m, expected):
    problem = readiness_problem(m.analyse(), TrainingConfig())
    assert problem is not None and expected in problem


def test_ready_models_and_losses():
    assert readiness_problem(model().analyse()) is None
    assert readiness_problem(model(input_shape=(784,)).analyse()) is None
    mse = TrainingConfig(loss="mean_squared_error")
    assert readiness_problem(model(activation="linear").analyse(), mse) is None
    assert "binary_crossentropy cannot" in readiness_problem(model().analyse(),
                                                            TrainingConfig(loss="binary_crossentropy"))


def test_readiness_includes_memory(monkeypatch):
    monkeypatch.setenv("VISUALCNN_MEMORY_LIMIT", str(64 * 1024 ** 2))
    huge = model(extra=(L.Conv2D(2000, 3, activation="relu"),))
    problem = readiness_problem(huge.analyse(), TrainingConfig(batch_size=64))
    assert problem is not None and "available" in problem and "conv2d's filters" in problem
    with pytest.raises(MemoryLimitError):
        prepare_run(huge, TrainingConfig(batch_size=64), fake_mnist(10))
    assert not huge.built


def test_step_count_is_the_engines():
    """1,000 images, validation split 0.33, batch 3: the window said 224 and the engine ran 223."""
    m = model()
    prepared = prepare_run(m, TrainingConfig(batch_size=3, validation_split=0.33, epochs=2, optimizer="sgd"),
                           fake_mnist(1000))
    steps = [r for r in prepared.run if isinstance(r, StepReport)]
    epochs = [r for r in prepared.run if isinstance(r, EpochReport)]
    assert prepared.steps_per_epoch == prepared.run.batches == steps[0].batches
    assert prepared.total_steps == len(steps) == 2 * prepared.steps_per_epoch
    assert prepared.train_examples + prepared.val_examples == 1000
    assert prepared.steps_per_epoch == math.ceil(prepared.train_examples / 3)
    assert epochs == []  # the generator was exhausted by the first list


def test_prepare_run_builds_compiles_scales_and_limits():
    m = model()
    config = TrainingConfig(optimizer="sgd", learning_rate=0.05, batch_size=10, seed=3)
    prepared = prepare_run(m, config, fake_mnist(200), limit=50)
    assert m.built and m.optimizer.name == "sgd" and m.optimizer.learning_rate == 0.05
    assert prepared.train_examples == 50 and prepared.steps_per_epoch == 5
    assert prepared.x_test.dtype == np.float32 and prepared.x_test.max() <= 1.0
    assert prepared.x_test.shape == (50, 28, 28, 1)
    reports = list(prepared.run)
    assert isinstance(reports[-1], EpochReport)
    with pytest.raises(ValueError, match="limit must be a positive"):
        prepare_run(model(), config, fake_mnist(20), limit=0)


def test_one_hot_labels_for_losses_that_need_them():
    m = model()
    config = TrainingConfig(loss="categorical_crossentropy", batch_size=8)
    prepared = prepare_run(m, config, fake_mnist(40))
    assert prepared.y_test.shape == (40, 10) and (prepared.y_test.sum(axis=1) == 1).all()
    list(prepared.run)
    labels = prepare_labels(np.array([2, 0]), "mean_squared_error")
    assert labels.tolist()[0] == [0, 0, 1, 0, 0, 0, 0, 0, 0, 0]
    assert prepare_labels(np.array([2, 0], np.uint8), "sparse_categorical_crossentropy").dtype == np.int64


def test_data_shapes_accepted():
    (x, y), _ = fake_mnist(30)

    class Arrays:
        x_train = (x[..., None] / np.float32(255)).astype(np.float32)
        y_train = y

    for data in ((x, y), fake_mnist(30), Arrays()):
        assert prepare_run(model(), TrainingConfig(batch_size=10), data).train_examples == 30
    with pytest.raises(ValueError, match="data must be"):
        prepare_run(model(), TrainingConfig(), "mnist")
    assert scale_images(x[:2], (784,)).shape == (2, 784)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 0, -0.1, "0.1", None, True])
def test_set_learning_rate_goes_through_the_optimizers_validation(bad):
    m = model()
    prepare_run(m, TrainingConfig(batch_size=10), fake_mnist(20))
    set_learning_rate(m, 0.01)
    assert m.optimizer.learning_rate == 0.01
    with pytest.raises(ValueError, match="learning_rate must be a positive number"):
        set_learning_rate(m, bad)
    assert m.optimizer.learning_rate == 0.01


def test_set_learning_rate_needs_a_compiled_model():
    with pytest.raises(ValueError, match="compile the model first"):
        set_learning_rate(model(), 0.01)


def test_the_step_count_function_is_the_one_train_uses():
    from visualcnn.engine.training import split_index, steps_per_epoch

    assert split_index(1000, 0.33) == 669  # 1000 * 0.67 is 669.99... in floating point
    assert steps_per_epoch(1000, 3, 0.33) == 223
    assert steps_per_epoch(1000, 3) == 334
    prepared = prepare_run(model(), TrainingConfig(batch_size=3, validation_split=0.33), fake_mnist(1000))
    assert prepared.steps_per_epoch == steps_per_epoch(1000, 3, 0.33)
    prepared.run.close()


@pytest.mark.parametrize("settings, expected", [
    (dict(learning_rate=float("nan")), "learning_rate"), (dict(learning_rate=0.0), "learning_rate"),
    (dict(batch_size=0), "batch_size"), (dict(validation_split=1.0), "validation_split"),
    (dict(optimizer="adagrad"), "optimizer"),
])
def test_settings_built_directly_are_checked_too(settings, expected):
    config = TrainingConfig(**settings)
    problem = readiness_problem(model().analyse(), config)
    assert problem is not None and expected in problem
    with pytest.raises(ValueError, match=expected):
        prepare_run(model(), config, fake_mnist(20))


def test_prepare_run_applies_the_cosine_schedule_over_the_whole_run():
    m = model()
    config = TrainingConfig(learning_rate=0.002, batch_size=10, epochs=2, schedule="cosine")
    prepared = prepare_run(m, config, fake_mnist(50))
    assert prepared.total_steps == 10
    schedule = m.optimizer.schedule
    assert (type(schedule).__name__, schedule.decay_steps) == ("CosineDecay", 10)
    assert m.optimizer.learning_rate == pytest.approx(0.002)
    rates = [r.learning_rate for r in prepared.run if isinstance(r, StepReport)]  # the rate of the next step
    assert len(rates) == 10 and rates == sorted(rates, reverse=True)
    assert m.optimizer.iterations == 10 and schedule(9) < 0.002 * 0.03 and rates[-1] == 0.0  # the last steps ~0
    constant = model()
    prepare_run(constant, TrainingConfig(learning_rate=0.002, batch_size=10), fake_mnist(50))
    assert constant.optimizer.schedule is None and constant.optimizer.learning_rate == 0.002


def test_set_learning_rate_with_a_schedule_rescales_its_starting_rate():
    m = model()
    prepared = prepare_run(m, TrainingConfig(learning_rate=0.002, batch_size=10, schedule="cosine"), fake_mnist(40))
    run = iter(prepared.run)
    next(run), next(run)
    before = m.optimizer.learning_rate
    set_learning_rate(m, 0.004)  # the window's box: the schedule's starting rate, the curve goes on from step 2
    assert m.optimizer.schedule.initial_learning_rate == 0.004 and m.optimizer.schedule.decay_steps == 4
    assert m.optimizer.learning_rate == pytest.approx(2 * before)
    with pytest.raises(ValueError, match="learning_rate must be a positive number"):
        set_learning_rate(m, float("nan"))
    assert m.optimizer.schedule.initial_learning_rate == 0.004
    list(run)
