"""The window's background warm-up: progress signals, the Train tab's line, no early ETA."""

from __future__ import annotations

import pytest

from visualcnn.engine import Sequential
from visualcnn.engine import layers as L
from visualcnn.engine.training import StepReport

pytest.importorskip("pytestqt")


def small_cnn() -> Sequential:
    m = Sequential([L.Input(shape=(28, 28, 1)), L.Conv2D(4, 3, activation="relu"), L.MaxPooling2D(),
                    L.Flatten(), L.Dense(10, activation="softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def step(batch, elapsed, epoch=1, batches=100, size=64):
    seen = batch * size
    rate = seen / elapsed
    return StepReport(epoch, 1, batch, batches, 1.0, 0.5, 1.0, 0.5, rate, seen, elapsed,
                      (batches * size - seen) / rate)


def test_warm_up_signals_progress_and_finishes(qtbot):
    from visualcnn.gui.engine_warmup import EngineWarmup

    warmup = EngineWarmup()
    events = []
    warmup.progressed.connect(lambda d, t: events.append((d, t)))
    with qtbot.waitSignal(warmup.finished, timeout=300_000):
        warmup.start(small_cnn())
    assert warmup.wait(10)
    assert events and events[0][0] == 0 and events[-1][0] == events[-1][1]
    assert not warmup.running and warmup.status_text() is None
    assert warmup._thread.daemon  # Ctrl-C or closing the window never waits for the compiler


def test_a_new_start_cancels_the_run_in_flight(qtbot):
    from visualcnn.gui.engine_warmup import EngineWarmup

    warmup = EngineWarmup()
    finished = []
    warmup.finished.connect(lambda: finished.append(1))
    warmup.start(small_cnn())
    first = warmup._thread
    with qtbot.waitSignal(warmup.finished, timeout=300_000):
        warmup.start(small_cnn())
    first.join(60)
    qtbot.wait(50)
    assert finished == [1]  # only the latest run reports finished


class FakeWarmup:
    def __init__(self):
        from PySide6.QtCore import QObject, Signal

        class Emitter(QObject):
            progressed = Signal(int, int)

        self._emitter = Emitter()
        self.progressed = self._emitter.progressed
        self.running, self.done, self.total = True, 12, 24

    def status_text(self):
        from visualcnn.gui.engine_warmup import preparing_text

        return preparing_text(self.done, self.total) if self.running else None


def test_train_tab_line_says_what_is_happening_and_gives_no_eta_until_speed_is_known(qtbot):
    from visualcnn.gui.app import create_application
    from visualcnn.gui.panels.training_controls import TrainingControlsPanel
    from visualcnn.gui.engine_warmup import TrainStatus

    create_application()
    controls = TrainingControlsPanel()
    qtbot.addWidget(controls)
    status = TrainStatus(controls)
    warmup = FakeWarmup()
    status.attach(warmup)
    controls.begin(1, 100)
    status.begin()
    assert controls.progress_label.text() == "Preparing the engine, first run only: 12 of 24 kernels"
    warmup.progressed.emit(13, 24)
    assert controls.progress_label.text() == "Preparing the engine, first run only: 13 of 24 kernels"
    # a step that waited 20 s for the compiler: no ETA from it
    status.step(step(1, 20.0))
    assert "ETA" not in controls.progress_label.text()
    assert "Preparing the engine" in controls.progress_label.text()
    warmup.running = False
    status.step(step(2, 20.02))
    assert "ETA" not in controls.progress_label.text() and "measuring speed" in controls.progress_label.text()
    for b in range(3, 6):
        status.step(step(b, 20.02 + 0.02 * (b - 2)))
    text = controls.progress_label.text()
    assert "ETA" in text
    # the speed counts only the steps after warm-up: 64 images per 20 ms, not 64*5 per 20 s
    assert "3,200 images/s" in text.replace("\u2060", "")  # word joiners keep "images/s" on one line
    status.end()


def test_window_warms_up_the_pipeline_when_it_opens(qtbot, monkeypatch):
    monkeypatch.setenv("VISUALCNN_WARMUP", "1")  # the other GUI tests turn it off (conftest)
    from visualcnn.gui.app import create_application
    from visualcnn.gui.main_window import MainWindow, preset_paths

    create_application()
    window = MainWindow()
    qtbot.addWidget(window)
    window.load_preset(next(p for p in preset_paths() if p.stem == "seed_cnn"))
    with qtbot.waitSignal(window.engine_warmup.finished, timeout=300_000):
        pass
    assert window.engine_warmup.wait(10)
    assert not window.engine_warmup.running


def test_follow_debounces_edits_and_skips_an_unchanged_model(qtbot, monkeypatch):
    monkeypatch.setenv("VISUALCNN_WARMUP", "1")
    from PySide6.QtCore import QObject, Signal

    from visualcnn.gui.engine_warmup import EngineWarmup, follow

    class Doc(QObject):
        report_updated = Signal(object)

    doc = Doc()
    warmup = EngineWarmup()
    started = []
    warmup.start = lambda model: started.append(model)  # record instead of compiling
    models = [small_cnn()]
    follow(warmup, doc.report_updated, lambda: models[-1], delay_ms=20)
    qtbot.waitUntil(lambda: len(started) == 1, timeout=2000)  # once when the window opens
    for _ in range(5):  # a burst of edits: one warm-up
        doc.report_updated.emit(None)
    qtbot.wait(100)
    assert len(started) == 1  # and the model did not change: nothing new to do
    wider = Sequential([L.Input(shape=(28, 28, 1)), L.Conv2D(8, 3, activation="relu"), L.Flatten(),
                        L.Dense(10, activation="softmax")])
    wider.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    models.append(wider)
    doc.report_updated.emit(None)
    qtbot.waitUntil(lambda: len(started) == 2, timeout=2000)
    assert started[-1] is wider


def test_speed_meter_keeps_the_measured_speed_into_the_next_epoch():
    from visualcnn.gui.engine_warmup import SpeedMeter

    meter = SpeedMeter(min_steps=2)
    assert meter.adjust(step(1, 30.0), warming=False) is None  # the step that waited for compiling
    assert meter.adjust(step(2, 30.1), warming=False) is None
    fast = meter.adjust(step(3, 30.2), warming=False)
    assert fast.images_per_second == pytest.approx(640)  # 128 images in 0.2 s, not 192 in 30.2 s
    assert fast.eta == pytest.approx((100 * 64 - 3 * 64) / 640)
    nxt = meter.adjust(step(1, 0.1, epoch=2), warming=False)
    assert nxt is not None and nxt.images_per_second == pytest.approx(640)


def test_deleting_the_warmup_object_cancels_its_run(qtbot):
    from visualcnn.gui.engine_warmup import EngineWarmup

    warmup = EngineWarmup()
    generation = warmup._generation.value
    warmup.start(small_cnn())
    assert warmup._generation.value == generation + 1
    warmup.deleteLater()
    qtbot.waitUntil(lambda: warmup._generation.value == generation + 2, timeout=5000)
    assert warmup.wait(120)  # the thread ends (at its next kernel), without a traceback


def test_warmup_can_be_turned_off(qtbot, monkeypatch):
    from PySide6.QtCore import QObject, Signal

    from visualcnn.gui.engine_warmup import EngineWarmup, follow

    class Doc(QObject):
        report_updated = Signal(object)

    monkeypatch.setenv("VISUALCNN_WARMUP", "0")
    warmup = EngineWarmup()
    started = []
    warmup.start = started.append
    doc = Doc()
    assert follow(warmup, doc.report_updated, small_cnn, delay_ms=10) is None
    doc.report_updated.emit(None)
    qtbot.wait(50)
    assert started == []
