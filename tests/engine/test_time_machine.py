"""engine/time_machine.py: the snapshot plan, the store's memory cap, and a moment restored
into a model gives exactly the weights the run had at that moment."""

import threading

import numpy as np
import pytest

from visualcnn.engine import Sequential, layers as L
from visualcnn.engine.recipe import prepare_run
from visualcnn.engine.training import StepReport
from visualcnn.engine.training_config import TrainingConfig
from visualcnn.engine.time_machine import (Moment, SnapshotStore, evaluate_moment, in_epoch_batches, model_at,
                                           plan_snapshots, probe_moment, weights_nbytes, weights_of)


def test_a_fresh_run_plans_the_start_the_first_epochs_inner_points_and_every_epoch_end():
    plan = plan_snapshots(938, 1, 3, snapshot_bytes=1000, cap_bytes=10**9)
    assert plan.points == ((0, 0), (1, 1), (1, 10), (1, 50), (1, 200), (1, 469), (1, 938), (2, 938), (3, 938))
    assert plan.note == ""
    assert plan.wants(1, 50) and not plan.wants(2, 50) and not plan.wants(1, 51)


def test_small_epochs_keep_only_the_inner_points_they_have():
    assert in_epoch_batches(8) == {1: 1, "mid": 4}
    assert plan_snapshots(60, 1, 1, 10, 10**6).points == ((0, 0), (1, 1), (1, 10), (1, 30), (1, 50), (1, 60))


def test_a_continued_run_plans_only_its_epoch_ends():
    plan = plan_snapshots(938, 3, 5, 1000, 10**9, with_start=False)
    assert plan.points == ((3, 938), (4, 938), (5, 938))


def test_the_cap_drops_inner_points_first_then_thins_epoch_ends_evenly():
    # 4 snapshots fit: the last epoch, the start, the first epoch, then the middle epoch end
    plan = plan_snapshots(938, 1, 9, snapshot_bytes=100, cap_bytes=450)
    assert plan.points == ((0, 0), (1, 938), (5, 938), (9, 938))
    assert "4 of 15 moments" in plan.note and "100 B" in plan.note
    # room for every epoch end and two inner points: batch 50 and mid-epoch are kept
    plan = plan_snapshots(938, 1, 3, snapshot_bytes=100, cap_bytes=600)
    assert plan.points == ((0, 0), (1, 50), (1, 469), (1, 938), (2, 938), (3, 938))
    none = plan_snapshots(938, 1, 3, snapshot_bytes=10**9, cap_bytes=256 * 2**20)
    assert none.points == () and none.note.startswith("No time machine for this run")


def moment(epoch, batch, batches=10, nbytes=400):
    return Moment(epoch, batch, batches, {"dense": [np.zeros(nbytes // 4, np.float32)]})


def test_the_store_never_passes_its_cap_and_a_continued_run_makes_room():
    store = SnapshotStore(cap_bytes=2000)  # five moments of 400 bytes
    plan = store.plan_run(10, 1, 2, 400, fresh=True)
    assert plan.points == ((0, 0), (1, 1), (1, 5), (1, 10), (2, 10))
    for epoch, batch in plan.points:
        assert store.add(moment(epoch, batch))
    assert not store.add(moment(1, 7)) and store.nbytes == 2000
    # Continue training for 3 more epochs: inner points give way (least telling first)
    plan = store.plan_run(10, 3, 5, 400, fresh=False)
    # the start, the first and the newest old epoch end stay; the new epochs are thinned evenly
    assert [m.key for m in store.moments] == [(0, 0), (1, 10), (2, 10)]
    assert plan.points == ((3, 10), (5, 10)) and "2 of 3 moments" in plan.note
    for epoch, batch in plan.points:
        assert store.add(moment(epoch, batch))
    assert store.nbytes == store.cap_bytes
    assert [m.short_label for m in store.moments] == ["start", "epoch 1", "epoch 2", "epoch 3", "epoch 5"]
    # with room, every new epoch end is kept and old ones are thinned only as far as needed
    store = SnapshotStore(cap_bytes=2400)
    for key in [(0, 0), (1, 10), (2, 10), (3, 10), (4, 10), (5, 10)]:
        assert store.add(moment(*key))
    assert store.plan_run(10, 6, 6, 400, fresh=False).points == ((6, 10),)
    assert [m.key for m in store.moments] == [(0, 0), (1, 10), (3, 10), (5, 10)]
    # a fresh run starts a new timeline
    store.plan_run(10, 1, 1, 400, fresh=True)
    assert len(store) == 0
    # continuing a run of a reopened project: a new timeline without a start (the weights are trained)
    assert store.plan_run(10, 2, 3, 400, fresh=True, with_start=False).points == ((2, 10), (3, 10))


def tiny_model():
    return Sequential([L.Input(shape=(28, 28, 1)), L.Conv2D(4, 3, activation="relu"), L.MaxPooling2D(),
                       L.Flatten(), L.Dense(10, activation="softmax")])


def data(n=256, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, n).astype(np.uint8)
    return (x, y), (x[:64], y[:64])


def test_restoring_a_moment_gives_exactly_the_weights_of_that_moment():
    config = TrainingConfig(batch_size=32, epochs=2, learning_rate=0.01, seed=3)
    model = tiny_model()
    prepared = prepare_run(model, config, data())
    store = SnapshotStore(cap_bytes=10**8)
    plan = store.plan_run(prepared.steps_per_epoch, 1, 2, weights_nbytes(model))
    store.add(Moment(0, 0, prepared.steps_per_epoch, weights_of(model)))
    truth = {(0, 0): model.get_weights()}
    for report in prepared.run:
        if isinstance(report, StepReport) and plan.wants(report.epoch, report.batch):
            store.add(Moment(report.epoch, report.batch, report.batches, weights_of(model)))
            truth[(report.epoch, report.batch)] = model.get_weights()
    assert [m.key for m in store.moments] == sorted(truth) == [(0, 0), (1, 1), (1, 4), (1, 8), (2, 8)]
    for m in store.moments:
        restored = model_at(model, m).get_weights()
        assert all(np.array_equal(a, b) for a, b in zip(restored, truth[m.key]))
    # the moments differ from one another and from the final weights (the run really moved them)
    assert not np.array_equal(model_at(model, store.moments[1]).get_weights()[0], model.get_weights()[0])

    (_, _), (x_test, y_test) = data()
    x = (x_test[..., None] / np.float32(255)).astype(np.float32)
    first = evaluate_moment(model, store.moments[0], x, y_test, images=50)
    probabilities = model_at(model, store.moments[0]).predict(x[:50])
    assert first.count == 50 and first.total == 64 and "first 50 of the 64" in first.subset_text
    assert first.matrix.sum() == 50
    assert np.array_equal(first.matrix.diagonal().sum(), (probabilities.argmax(1) == y_test[:50]).sum())
    cancelled = threading.Event()
    cancelled.set()  # the window is closing: nothing is predicted, nothing returned
    assert evaluate_moment(model.to_json(), store.moments[0], x, y_test, images=50, cancel=cancelled) is None
    probe = probe_moment(model, store.moments[-1], x[0, ..., 0])
    assert probe.probabilities.shape == (10,) and probe.saliency.shape == (28, 28)
    assert np.allclose(probe.probabilities, model.predict(x[:1])[0], atol=1e-6)


def test_a_bad_run_length_is_refused_in_one_line():
    with pytest.raises(ValueError, match="at least one batch"):
        plan_snapshots(0, 1, 1, 10, 100)
