"""engine/callbacks.py: Keras's callbacks, called by the training generator itself, so
Model.fit, the recipe (CLI and window) and a continued run all see the same calls."""

import json

import numpy as np
import pytest

from visualcnn.engine import Sequential, layers as L, optimizers
from visualcnn.engine.callbacks import (Callback, EarlyStopping, LearningRateScheduler, ModelCheckpoint,
                                        ReduceLROnPlateau, callbacks_problem)
from visualcnn.engine.recipe import prepare_run
from visualcnn.engine.schedules import PiecewiseConstantDecay, learning_rate_curve
from visualcnn.engine.training import EpochReport, StepReport
from visualcnn.engine.training_config import TrainingConfig


def dense_model(lr=0.05):
    m = Sequential([L.Input(shape=(8,)), L.Dense(16, activation="relu"), L.Dense(3, activation="softmax")])
    m.compile(optimizer=optimizers.Adam(learning_rate=lr), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
    return m


def data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 1).astype(np.int64)
    return x, y


class Scripted(Callback):
    """Writes a scripted val_loss into the epoch's logs (runs before the callbacks after it)."""

    def __init__(self, values):
        super().__init__()
        self.values = values

    def on_epoch_end(self, epoch, logs=None):
        logs["val_loss"] = self.values[epoch]


class WeightsPerEpoch(Callback):
    def __init__(self):
        super().__init__()
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())


def same(a, b):
    return all(np.array_equal(p, q) for p, q in zip(a, b))


def test_early_stopping_restores_the_best_epochs_weights_on_a_scripted_plateau():
    m = dense_model()
    x, y = data()
    record = WeightsPerEpoch()
    stop = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    history = m.fit(x, y, batch_size=16, epochs=10, verbose=0,
                    callbacks=[Scripted([1.0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3]), record, stop])
    assert len(history.epoch) == 4  # best at epoch 2 (index 1), two epochs without improvement, stop
    assert (stop.best_epoch, stop.stopped_epoch, stop.best) == (1, 3, 0.5)
    assert same(m.get_weights(), record.weights[1])
    assert not same(m.get_weights(), record.weights[3])  # the run's last weights were replaced


def test_early_stopping_restores_the_best_weights_on_a_real_plateau():
    # Two epochs learn; then the learning rate is so small that val_loss stays flat
    # (within min_delta): a real plateau. The weights come back from the best epoch.
    m = dense_model(lr=0.02)
    x, y = data(200)
    record = WeightsPerEpoch()
    rates = LearningRateScheduler(lambda epoch, lr: 0.02 if epoch < 2 else 1e-9)
    stop = EarlyStopping(monitor="val_loss", min_delta=1e-3, patience=2, restore_best_weights=True)
    history = m.fit(x, y, batch_size=20, epochs=12, verbose=0, validation_split=0.25,
                    callbacks=[rates, record, stop])
    losses = history.history["val_loss"]
    assert len(losses) < 12 and stop.stopped_epoch > 0
    # the plateau: after epoch 2 nothing improves by min_delta (tiny gains do not count)
    assert stop.best_epoch == 1 and stop.best == losses[1]
    assert all(abs(v - losses[1]) < 1e-3 for v in losses[2:])
    assert same(m.get_weights(), record.weights[stop.best_epoch])
    assert not same(record.weights[stop.best_epoch], record.weights[-1])


def test_early_stopping_without_restore_keeps_the_last_weights_and_start_from_epoch_waits():
    m = dense_model()
    x, y = data()
    record = WeightsPerEpoch()
    stop = EarlyStopping(patience=1, start_from_epoch=3)
    history = m.fit(x, y, batch_size=16, epochs=10, verbose=0,
                    callbacks=[Scripted([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 9.5]), record, stop])
    assert len(history.epoch) == 5  # epochs 0-2 ignored; best at 3, no better at 4: stop
    assert same(m.get_weights(), record.weights[-1])


def test_reduce_lr_on_plateau_multiplies_the_rate_after_patience_with_cooldown_and_floor():
    m = dense_model(lr=0.01)
    x, y = data()
    seen = []

    class Rate(Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(float(self.model.optimizer.learning_rate))

    cb = ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1, cooldown=2, min_lr=0.002)
    m.fit(x, y, batch_size=30, epochs=7, verbose=0, callbacks=[Scripted([1.0] * 7), cb, Rate()])
    # epoch 0 sets best; 1: wait 1 -> 0.005, cooldown 2; 2: cooldown (Keras counts it down before
    # checking, so 2 epochs of cooldown skip one); 3: -> 0.0025; 4: cooldown; 5: -> max(0.00125, 0.002)
    assert seen == pytest.approx([0.01, 0.005, 0.005, 0.0025, 0.0025, 0.002, 0.002])
    with pytest.raises(ValueError, match="factor >= 1.0"):
        ReduceLROnPlateau(factor=1.5)


def test_learning_rate_scheduler_sets_each_epochs_rate_before_its_first_batch():
    m = dense_model()
    x, y = data(60)
    m.compile(optimizer=optimizers.SGD(learning_rate=0.1), loss="sparse_categorical_crossentropy")
    cb = LearningRateScheduler(lambda epoch: 0.1 * 0.5 ** epoch)
    from visualcnn.engine.training import train

    run = train(m, x, y, batch_size=30, epochs=3, callbacks=[cb])
    rates = [r.learning_rate for r in run if isinstance(r, StepReport)]
    assert rates == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])
    with pytest.raises(ValueError, match="should be a float"):
        m.fit(x, y, epochs=1, verbose=0, callbacks=[LearningRateScheduler(lambda epoch: "fast")])


def test_model_checkpoint_writes_each_epoch_or_only_the_best(tmp_path):
    from visualcnn.engine.model_io import load_model

    m = dense_model()
    x, y = data()
    every = ModelCheckpoint(str(tmp_path / "e{epoch:02d}.json"), monitor="loss")
    best = ModelCheckpoint(str(tmp_path / "best.json"), save_best_only=True)
    m.fit(x, y, batch_size=30, epochs=3, verbose=0, callbacks=[Scripted([0.5, 0.7, 0.4]), every, best])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.json", "e01.json", "e02.json", "e03.json"]
    assert same(load_model(tmp_path / "e03.json").get_weights(), m.get_weights())
    assert same(load_model(tmp_path / "best.json").get_weights(), m.get_weights())  # epoch 3 was the best
    with pytest.raises(ValueError, match=r"must end in `\.weights\.h5`"):
        ModelCheckpoint(str(tmp_path / "w.json"), save_weights_only=True)


def test_callback_order_matches_keras():
    calls = []

    class Log(Callback):
        def on_train_begin(self, logs=None):
            calls.append("train_begin")

        def on_epoch_begin(self, epoch, logs=None):
            calls.append(f"epoch_begin {epoch}")

        def on_train_batch_begin(self, batch, logs=None):
            calls.append(f"batch_begin {batch}")

        def on_train_batch_end(self, batch, logs=None):
            calls.append(f"batch_end {batch} {sorted(logs)}")

        def on_epoch_end(self, epoch, logs=None):
            calls.append(f"epoch_end {epoch} {sorted(logs)}")

        def on_train_end(self, logs=None):
            calls.append("train_end")

    m = dense_model()
    x, y = data(40)
    m.fit(x, y, batch_size=20, epochs=2, verbose=0, validation_split=0.5, callbacks=[Log()])
    assert calls == ["train_begin", "epoch_begin 0", "batch_begin 0", "batch_end 0 ['accuracy', 'loss']",
                     "epoch_end 0 ['accuracy', 'loss', 'val_accuracy', 'val_loss']", "epoch_begin 1",
                     "batch_begin 0", "batch_end 0 ['accuracy', 'loss']",
                     "epoch_end 1 ['accuracy', 'loss', 'val_accuracy', 'val_loss']", "train_end"]


def test_the_recipe_builds_the_callbacks_from_the_settings_for_the_cli_and_the_window():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (200, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 200).astype(np.uint8)
    m = Sequential([L.Input(shape=(28, 28, 1)), L.Flatten(), L.Dense(10, activation="softmax")])
    config = TrainingConfig(learning_rate=0.5, batch_size=50, epochs=6, validation_split=0.25, early_stopping=True,
                            patience=0, restore_best_weights=True, seed=1)
    prepared = prepare_run(m, config, ((images, labels), (images[:20], labels[:20])))
    epochs = [r for r in prepared.run if isinstance(r, EpochReport)]
    assert [type(cb).__name__ for cb in prepared.run.callbacks] == ["EarlyStopping"]
    assert len(epochs) < 6 and any("early stopping" in line for line in prepared.run.messages)
    assert prepared.run.position.ended


def test_callback_settings_that_cannot_work_say_why():
    assert "needs validation data" in callbacks_problem(TrainingConfig(early_stopping=True))
    assert callbacks_problem(TrainingConfig(early_stopping=True, monitor="loss")) is None
    assert "use one or the other" in callbacks_problem(
        TrainingConfig(reduce_lr_on_plateau=True, monitor="loss", schedule="cosine"))


def test_piecewise_constant_decay_follows_keras_boundary_rule():
    s = PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])
    assert [s(9), s(10), s(11), s(20), s(21)] == pytest.approx([1.0, 1.0, 0.5, 0.5, 0.1])
    with pytest.raises(ValueError, match="length of `values`"):
        PiecewiseConstantDecay([10], [1.0])


@pytest.mark.parametrize("schedule", ["constant", "step", "exponential", "cosine"])
def test_the_plotted_curve_is_the_rate_every_step_of_the_run_used(schedule):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (100, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 100).astype(np.uint8)
    m = Sequential([L.Input(shape=(28, 28, 1)), L.Flatten(), L.Dense(10, activation="softmax")])
    config = TrainingConfig(learning_rate=0.01, batch_size=25, epochs=3, schedule=schedule, decay_rate=0.5)
    prepared = prepare_run(m, config, (images, labels))
    used = []
    optimizer = m.optimizer
    for report in prepared.run:
        if isinstance(report, StepReport):
            used.append(optimizer.schedule(optimizer.iterations - 1) if optimizer.schedule else
                        optimizer.learning_rate)
    x, rates = learning_rate_curve(config, prepared.steps_per_epoch)
    assert rates.tolist() == used and x[-1] == 3.0 and len(x) == 12
    if schedule == "step":  # halved at the start of epochs 2 and 3
        assert rates.tolist() == pytest.approx([0.01] * 4 + [0.005] * 4 + [0.0025] * 4)


def test_settings_round_trip_and_are_written_only_when_used():
    plain = TrainingConfig()
    assert "early_stopping" not in plain.to_dict() and "decay_rate" not in plain.to_dict()
    config = TrainingConfig(schedule="exponential", decay_rate=0.8, early_stopping=True, patience=4,
                            restore_best_weights=True, validation_split=0.1)
    assert TrainingConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    from visualcnn.engine.layers import ConfigError

    with pytest.raises(ConfigError, match="monitor expected one of"):
        TrainingConfig.from_dict({"monitor": "val_los"})
