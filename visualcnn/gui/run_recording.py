"""Every run of the Train tab joins the project's run history (the document's "runs" section).

The recorder listens to the Train tab's signals only: the run's reports go to the engine's
RunRecorder (engine/run_history.py, the same one `visualcnn train --save` uses), and when
the tab reports the run finished, the record is added to the document. The tab itself
does not know about the history.

    recorder = RunHistoryRecorder(train_tab, document)   # the main window does this once
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from ..engine.run_history import RunRecorder, add_run

DATASET_NAMES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}


class RunHistoryRecorder(QObject):
    recorded = Signal(dict)  # the record just added to the document

    def __init__(self, train_tab, document, parent: QObject | None = None):
        super().__init__(parent if parent is not None else train_tab)
        self._tab, self._document = train_tab, document
        self._recorder: RunRecorder | None = None
        self._test: tuple | None = None
        self._error: str | None = None
        train_tab.run_started.connect(self._on_run_started)
        train_tab.run_finished.connect(self._on_run_finished)
        controller = train_tab.controller
        controller.progressed.connect(self._on_report)
        controller.epoch_finished.connect(self._on_report)
        controller.evaluated.connect(self._on_evaluated)
        controller.errored.connect(self._on_errored)

    def _on_run_started(self) -> None:
        tab, document = self._tab, self._document
        settings = tab.training_settings().to_dict()
        images = tab.controls.train_image_count()
        data = getattr(tab, "_data", None)  # the arrays the run trains on (loaded by now)
        if data is not None:
            images = min(images, len(data.y_train))
        settings["limit"] = images
        report = document.report
        self._recorder = RunRecorder(settings, f"{dataset_name(tab, document)}, {images:,} training images",
                                     source="window", model=document.name or None,
                                     params=report.total_params if report is not None and not report.error else None)
        self._test = self._error = None

    def _on_report(self, report) -> None:
        if self._recorder is not None:
            self._recorder.add(report)

    def _on_evaluated(self, results) -> None:
        self._test = (results.loss, results.accuracy)

    def _on_errored(self, message: str) -> None:
        self._error = message

    def _on_run_finished(self, _model) -> None:
        recorder, self._recorder = self._recorder, None
        if recorder is None or (recorder.epochs_run == 0 and recorder.batches == 0):
            return  # ended before its first batch: nothing to compare
        if self._error is not None:
            status = "diverged" if "NaN" in self._error else "failed"
        else:
            status = "completed" if self._test is not None else "stopped"
        test_loss, test_accuracy = self._test or (None, None)
        record = recorder.finish(status, test_loss, test_accuracy)
        runs = add_run(self._document.section("runs"), record)
        self._document.set_section("runs", runs)
        self.recorded.emit(runs[-1])


def dataset_name(tab, document) -> str:
    """The data the run trains on, as the table shows it: the Train tab's choice (the
    project's "dataset" section; an image folder by its folder name), MNIST by default."""
    spec = tab.dataset_spec() if hasattr(tab, "dataset_spec") else document.section("dataset")
    if isinstance(spec, dict) and spec.get("source"):
        source = spec["source"]
        if source in DATASET_NAMES:
            return DATASET_NAMES[source]
        path = spec.get("path")
        return f"folder {Path(str(path)).name}" if path else str(source)
    return "MNIST"
