"""TrainingController / TrainingWorker: the QThread adapter over engine.training (waitSignal, no sleeps)."""

from __future__ import annotations

import numpy as np
import pytest

from visualcnn.engine import Sequential
from visualcnn.engine import layers as L

pytest.importorskip("pytestqt")


@pytest.fixture(scope="module")
def data():
    from visualcnn.gui.train_tab import dataset_arrays

    d = dataset_arrays("mnist")
    return d.x_train[:640], d.y_train[:640], d.x_test[:200], d.y_test[:200]


def compiled_model() -> Sequential:
    model = Sequential([L.Input(shape=(28, 28, 1)), L.Conv2D(4, 3, activation="relu"), L.MaxPooling2D(),
                        L.Flatten(), L.Dense(10, activation="softmax")])
    model.build(seed=0)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.fixture
def controller(qtbot):
    from visualcnn.gui.training_worker import TrainingController

    c = TrainingController()
    yield c
    assert c.shutdown()


def request(data, epochs=1, **kwargs):
    from visualcnn.gui.training_worker import TrainingRequest

    x, y, xt, yt = data
    return TrainingRequest(compiled_model(), x, y, xt, yt, batch_size=64, epochs=epochs, **kwargs)


def test_completed_run_reports_and_evaluates(qtbot, controller, data):
    progressed, epochs, snapshots, results, order = [], [], [], [], []
    controller.progressed.connect(progressed.append)
    controller.epoch_finished.connect(epochs.append)
    controller.snapshot_taken.connect(snapshots.append)
    controller.evaluated.connect(lambda r: (results.append(r), order.append("evaluated")))
    controller.finished.connect(lambda ok: order.append(("finished", ok)))
    with qtbot.waitSignal(controller.finished, timeout=30000):
        controller.start(request(data, epochs=2, probe=data[2][0, :, :, 0]))
    assert order == ["evaluated", ("finished", True)]
    assert not controller.running
    assert [e.epoch for e in epochs] == [1, 2]
    # the last batch of every epoch is always reported, whatever the throttle drops
    assert [(p.epoch, p.batch) for p in progressed if p.batch == p.batches] == [(1, 10), (2, 10)]
    final = snapshots[-1]
    assert final.activations["conv2d"].shape == (26, 26, 4) and final.weights["conv2d"][0].shape == (3, 3, 1, 4)
    assert results[0].probabilities.shape == (200, 10) and 0.0 <= results[0].accuracy <= 1.0


def test_bad_request_becomes_an_error_message_and_finished_still_fires(qtbot, controller, data):
    errors = []
    controller.errored.connect(errors.append)
    with qtbot.waitSignal(controller.finished, timeout=10000) as finished:
        controller.start(request(data, validation_split=0.999))
    assert finished.args == [False]
    assert len(errors) == 1 and "validation_split" in errors[0]


def test_stop_while_paused_wakes_the_worker(qtbot, controller, data):
    with qtbot.waitSignal(controller.progressed, timeout=10000):
        controller.start(request(data, epochs=1000))
    with qtbot.waitSignal(controller.paused, timeout=10000):
        controller.pause()
    assert controller.is_paused
    with qtbot.waitSignal(controller.finished, timeout=10000) as finished:
        controller.stop()
    assert finished.args == [False] and not controller.running


def test_learning_rate_is_applied_between_batches(qtbot, controller, data):
    req = request(data, epochs=1000)
    with qtbot.waitSignal(controller.progressed, timeout=10000):
        controller.start(req)
    controller.set_learning_rate(0.05)
    qtbot.waitUntil(lambda: req.model.optimizer.learning_rate == pytest.approx(0.05), timeout=5000)
    with qtbot.waitSignal(controller.finished, timeout=10000):
        controller.stop()


def test_shutdown_while_running_leaves_no_thread(qtbot, controller, data):
    with qtbot.waitSignal(controller.progressed, timeout=10000):
        controller.start(request(data, epochs=1000))
    thread = controller._thread
    assert controller.shutdown()
    assert thread.isFinished() and not controller.running
    with pytest.raises(RuntimeError):  # one run at a time
        controller.start(request(data))
        controller.start(request(data))
    assert controller.shutdown()


def test_weights_in_snapshots_are_copies(qtbot, controller, data):
    req = request(data, epochs=2)
    snapshots = []
    controller.snapshot_taken.connect(snapshots.append)
    with qtbot.waitSignal(controller.finished, timeout=30000):
        controller.start(req)
    live = req.model.layers[0].weights[0]
    assert not any(np.shares_memory(s.weights["conv2d"][0], live) for s in snapshots)
    np.testing.assert_array_equal(snapshots[-1].weights["conv2d"][0], live)


def test_a_finished_run_frees_its_worker_thread_and_model(qtbot, controller, data):
    """The leak of issue 16: the worker (and the model it holds) outlived every run."""
    import gc
    import weakref

    req = request(data)
    model_ref, worker_refs = weakref.ref(req.model), []
    controller.started.connect(lambda: worker_refs.append(weakref.ref(controller.worker)))
    with qtbot.waitSignal(controller.finished, timeout=30000):
        controller.start(req)
    del req
    qtbot.wait(0)
    gc.collect()
    assert worker_refs and worker_refs[0]() is None, "the worker outlived its run"
    assert model_ref() is None, "the run's model outlived its run"


def test_a_bad_learning_rate_is_refused_by_the_optimizer_and_the_run_goes_on(qtbot, controller, data):
    req = request(data, epochs=1000)
    with qtbot.waitSignal(controller.progressed, timeout=10000):
        controller.start(req)
    with qtbot.waitSignal(controller.learning_rate_refused, timeout=10000) as refused:
        controller.set_learning_rate(float("nan"))
    assert "nan" in refused.args[0].lower()
    assert req.model.optimizer.learning_rate == pytest.approx(0.001) and controller.running
    with qtbot.waitSignal(controller.finished, timeout=10000):
        controller.stop()
