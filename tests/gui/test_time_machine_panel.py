"""The time machine in the real Train tab: a tiny run keeps its moments; the slider at
epoch 1 and at the last epoch shows different filters, and the confusion matrix shown is
an evaluation with that moment's weights; Continue training appends its epochs."""

from __future__ import annotations

import numpy as np

from visualcnn.engine.time_machine import confusion, model_at


def settings(window, epochs):
    controls = window.train_panel.controls
    controls.train_images.setValue(320)
    controls.batch_size.setValue(64)
    controls.epochs.setValue(epochs)


def run(qtbot, window, start):
    with qtbot.waitSignal(window.train_panel.run_finished, timeout=120_000) as finished:
        assert start()
    return finished.args[0]


def shown_filters(panel):
    return np.array(panel.filters.image.image, copy=True)


def wait_for_matrix(qtbot, machine, moment):
    qtbot.waitUntil(lambda: machine.evaluation(moment) is not None, timeout=60_000)
    qtbot.waitUntil(lambda: np.array_equal(machine.view.matrix.matrix, machine.evaluation(moment).matrix),
                    timeout=10_000)
    return machine.view.matrix.matrix.copy()


def test_the_slider_replays_the_filters_and_the_confusion_matrix_of_each_moment(qtbot, seed_window, seed_path):
    window = seed_window
    panel = window.train_panel
    machine = panel.time_machine
    settings(window, 3)
    model = run(qtbot, window, panel.start)
    moments = machine.store.moments
    # 320 images at batch 64: 5 batches an epoch: start, batches 1 and 2 (mid), 3 epoch ends
    assert [m.short_label for m in moments] == ["start", "batch 1", "batch 2", "epoch 1", "epoch 2", "epoch 3"]
    assert machine.bar.slider.isEnabled() and machine.bar.slider.maximum() == 5
    # the latest moment is the trained model itself
    assert all(np.array_equal(a, b) for a, b in zip(model_at(model.to_json(), moments[-1]).get_weights(),
                                                    model.get_weights()))

    # the confusion matrices are computed only while the Time machine tab is in view
    assert machine.evaluation(moments[-1]) is None and not machine.runner.is_busy()
    panel.lower_tabs.setCurrentWidget(machine.view)
    window.tabs.setCurrentWidget(window.train_page)
    machine.bar.slider.setValue(3)  # after epoch 1
    assert "after epoch 1" in machine.bar.moment.text()
    # the moment is marked on the loss curve: x is in epochs (1.0 = the end of epoch 1)
    assert machine._lines[0].isVisible() and machine._lines[0].value() == 1.0
    first_filters = shown_filters(panel)
    first_matrix = wait_for_matrix(qtbot, machine, moments[3])
    machine.bar.slider.setValue(5)  # after epoch 3
    last_filters = shown_filters(panel)
    last_matrix = wait_for_matrix(qtbot, machine, moments[5])
    assert not np.array_equal(first_filters, last_filters)
    # one colour scale for every moment: the largest |weight| of any moment, rounded up
    kernels = [m.weights["conv2d"][0] for m in moments]
    level = panel.filters.colour_bar.levels()[1]
    assert max(float(np.abs(k).max()) for k in kernels) <= level * (1 + 1e-6)
    assert "same at every moment" in panel.filters.title.text()

    # the matrix on screen is an evaluation with that moment's weights, here recomputed
    data = panel.dataset()
    x, y = np.asarray(panel.time_machine._x_test)[:2000], np.asarray(data.y_test)[:2000]
    for moment, shown in ((moments[3], first_matrix), (moments[5], last_matrix)):
        predicted = model_at(model.to_json(), moment).predict(x, batch_size=500).argmax(axis=1)
        assert np.array_equal(shown, confusion(y, predicted, 10))
        assert shown.sum() == 2000
    assert not np.array_equal(first_matrix, last_matrix)
    assert "first 2,000 of the 10,000 test images" in machine.view.summary.text()
    # the probe's answer and saliency are drawn for the moment
    assert "sure" in machine.view.answer.text() and not machine.view.saliency.pixmap().isNull()

    # Continue training appends its epochs to the same timeline
    settings(window, 1)
    run(qtbot, window, panel.continue_training)
    assert [m.short_label for m in machine.store.moments][-2:] == ["epoch 3", "epoch 4"]
    assert machine.store.moments[0].short_label == "start"
    # a fresh run starts a new timeline
    settings(window, 1)
    run(qtbot, window, panel.start)
    assert [m.short_label for m in machine.store.moments] == ["start", "batch 1", "batch 2", "epoch 1"]
    assert "pipeline changed" not in machine.bar.moment.text()
    # an edit of the pipeline is said (the slider replays the last run's network)
    document = window.document
    index = next(i for i, entry in enumerate(document.entries) if entry.class_name == "Conv2D")
    assert document.set_layer_config(index, {**document.entries[index].config, "filters": 8})
    assert "pipeline changed" in machine.bar.moment.text()
    # another project: an empty timeline
    assert window.load_preset(seed_path)
    assert len(machine.store) == 0 and not machine.bar.slider.isEnabled()
