"""The main window's two explanation windows (issue 13 items 3 and 4), opened from the Explain
menu: "Why did it answer that?" (gui/explain_maps_panel.py) and "What does a filter want to
see?" (gui/filter_vis_panel.py). One of each, reused; they follow the Draw tab (its model and
its drawn digit, copied: the windows compute in the background and never share the tab's
model, which a training run's snapshots update), and their background work is stopped when
the main window closes or the application quits.
"""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication, QObject, QSize
from PySide6.QtGui import QGuiApplication

from .window_fit import initial_window_size

MAPS_SIZE, FILTERS_SIZE = QSize(1200, 820), QSize(960, 560)


class ExplainWindows(QObject):
    """Opens / updates the two windows for `window` (a MainWindow: draw_panel, window_closed)."""

    def __init__(self, window):
        super().__init__(window)
        self._window = window
        self.maps_window = None
        self.filter_window = None
        window.draw_panel.classified.connect(self._on_classified)
        window.window_closed.connect(self.stop)
        app = QCoreApplication.instance()
        if app is not None:  # never leave a job thread running into the interpreter's exit
            app.aboutToQuit.connect(self.stop)

    def open_maps(self):
        from .explain_maps_panel import ExplainMapsWindow

        if self.maps_window is None:
            self.maps_window = ExplainMapsWindow(self._window)
            self._place(self.maps_window, MAPS_SIZE)
        self.maps_window.set_source(*self._window.draw_panel.explain_source())
        self._raise(self.maps_window)
        return self.maps_window

    def open_filters(self):
        from .filter_vis_panel import FilterVisWindow

        if self.filter_window is None:
            self.filter_window = FilterVisWindow(self._window)
            self._place(self.filter_window, FILTERS_SIZE)
        if not self.filter_window.runner.has("maximise"):
            self.filter_window.set_model(self._window.draw_panel.explain_source()[0])
        self._raise(self.filter_window)
        return self.filter_window

    def stop(self) -> None:
        """Cancel both windows' work and wait (briefly: the engine stops between batches) for it to end."""
        for panel in (self.maps_window, self.filter_window):
            if panel is not None:
                panel.stop()

    def _on_classified(self, _payload) -> None:
        """A new drawing, or new weights: the open windows follow the Draw tab."""
        maps, filters = self.maps_window, self.filter_window
        if maps is not None and maps.isVisible():
            maps.set_source(*self._window.draw_panel.explain_source())
        if filters is not None and filters.isVisible() and not filters.runner.has("maximise"):
            filters.set_model(self._window.draw_panel.explain_source()[0])

    def _place(self, panel, preferred: QSize) -> None:
        panel.resize(initial_window_size(panel, preferred))
        if QGuiApplication.platformName() not in ("offscreen", "minimal"):
            screen = self._window.screen() or QGuiApplication.primaryScreen()
            if screen is not None:  # fully on the screen the main window is on
                free = screen.availableGeometry()
                panel.move(free.x() + max(0, (free.width() - panel.width()) // 2),
                           free.y() + max(0, (free.height() - panel.height()) // 2))

    @staticmethod
    def _raise(panel) -> None:
        panel.show()
        panel.raise_()
        panel.activateWindow()


__all__ = ["ExplainWindows"]
