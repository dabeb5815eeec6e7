"""The window's dataset features, wired in one place (MainWindow calls install_dataset_ui):

- the Draw tab becomes "Try it" (gui/try_it.py) when the project's dataset is not MNIST's
  digits: the same tab position, its page showing the Try-it panel instead of the canvas;
- the Try-it panel classifies with the project's trained weights, and with the run's
  snapshots while one trains, using the dataset's class names;
- View ▸ Dataset Browser… (gui/dataset_browser.py);
- the augmentation preview strip under the Build tab's pipeline (gui/augmentation_preview.py).
"""

from __future__ import annotations

import weakref

from PySide6.QtCore import QObject

from .augmentation_preview import AugmentationPreview
from .dataset_browser import show_dataset_browser
from .dataset_picker import is_digit_dataset
from .try_it import TryItWidget

DRAW_TITLE, TRY_IT_TITLE = "Draw", "Try it"


class DatasetWindowUi(QObject):
    """Keeps the Draw / Try it tab, the Try-it model and the preview strip in step."""

    def __init__(self, window):
        super().__init__(window)
        self._window = weakref.ref(window)
        self.try_it = TryItWidget()
        self.try_it.hide()
        self.try_it.setParent(window)  # owned by the window while the Draw tab shows
        self.try_it_shown = False
        self.preview = AugmentationPreview()
        build_page = window.tabs.widget(0)
        build_page.layout().insertWidget(2, self.preview)  # under the pipeline, above the Train bar
        self.preview.bind(window.document, window.train_panel)
        document, train = window.document, window.train_panel
        document.section_changed.connect(self._on_document_section_changed)
        document.weights_changed.connect(self._on_document_weights_changed)
        train.dataset_loaded.connect(self._on_train_dataset_loaded)
        train.run_started.connect(self._on_train_run_started)
        train.controller.snapshot_taken.connect(self._on_training_snapshot_taken)
        self.browser_action = None
        for action in window.menuBar().actions():
            if action.text().replace("&", "") == "View" and action.menu() is not None:
                menu = action.menu()
                first = menu.actions()[0] if menu.actions() else None
                self.browser_action = menu.addAction("Dataset &Browser…")
                menu.removeAction(self.browser_action)
                menu.insertAction(first, self.browser_action)
                menu.insertSeparator(first)
                self.browser_action.setToolTip("Every class of the training data, with counts and examples")
                self.browser_action.triggered.connect(self.open_browser)
                break
        self._follow_dataset()

    def window(self):
        return self._window()

    def open_browser(self):
        window = self.window()
        return None if window is None else show_dataset_browser(window.train_panel)

    # --- Draw or Try it -------------------------------------------------------------------

    def _follow_dataset(self) -> None:
        window = self.window()
        if window is None:
            return
        want_try_it = not is_digit_dataset(window.document.section("dataset"))
        if want_try_it == self.try_it_shown:
            return
        page = window.draw_page
        index = window.tabs.indexOf(page)
        current = page.takeWidget()
        if want_try_it:
            window.draw_panel.setParent(window)  # kept (hidden) for when MNIST comes back
            window.draw_panel.hide()
            page.setWidget(self.try_it)
            self.try_it.show()
            self._update_try_it_model()
        else:
            self.try_it.setParent(window)
            self.try_it.hide()
            page.setWidget(window.draw_panel)
            window.draw_panel.show()
        del current
        self.try_it_shown = want_try_it
        if index >= 0:
            tip = ("Classify an image file with the trained network" if want_try_it
                   else "Draw a digit and see what every layer makes of it")
            bars = [window.tabs]
            if getattr(window, "tab_bar", None) is not None:  # the pinned bar that mirrors the tabs (tab_strip.py)
                bars.append(window.tab_bar)
            for bar in bars:
                bar.setTabText(index, TRY_IT_TITLE if want_try_it else DRAW_TITLE)
                bar.setTabToolTip(index, tip)

    def _update_try_it_model(self) -> None:
        window = self.window()
        if window is None or not self.try_it_shown or window.locked:
            return
        try:
            model = window.trained_model()
        except ValueError:  # ConfigError: weights that do not fit (the Draw tab says so)
            model = None
        self.try_it.set_model(model)

    # --- slots -----------------------------------------------------------------------------

    def _on_document_section_changed(self, key: str) -> None:
        if key == "dataset":
            self._follow_dataset()
            window = self.window()
            if window is not None:  # the Build tab's "Ready to train" line checks the new data
                window._on_document_report_updated(window.document.report)

    def _on_document_weights_changed(self) -> None:
        self._update_try_it_model()

    def _on_train_dataset_loaded(self, data) -> None:
        window = self.window()
        spec = window.document.section("dataset") if window is not None else None
        self.try_it.set_dataset(data, (spec or {}).get("interpolation", "bilinear"))

    def _on_train_run_started(self) -> None:
        window = self.window()
        if window is None or not self.try_it_shown:
            return
        try:
            model = window.build_engine_model()
            model.build()
        except ValueError:
            return
        self.try_it.set_model(model)  # then the run's snapshots

    def _on_training_snapshot_taken(self, snapshot) -> None:
        if self.try_it_shown:
            self.try_it.set_weights_snapshot(snapshot.weights)


def install_dataset_ui(window) -> DatasetWindowUi:
    return DatasetWindowUi(window)
