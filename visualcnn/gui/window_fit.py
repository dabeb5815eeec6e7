"""Fitting the builder window to the screen it opens on (a classroom projector is often
1024x768 or 1280x720).

- The first size is the preferred one, shrunk to the screen's free area: a 1440x900 window
  on a 1024x768 projector hangs off the screen with its right dock out of sight.
- On a short window the Summary dock joins the Inspector as a tab instead of taking a
  third of the height under the pipeline, which then shows every block of a LeNet-5
  (the status line under the pipeline keeps the totals that matter: parameters, output,
  training memory).
"""

from __future__ import annotations

from PySide6.QtCore import QSize
from PySide6.QtGui import QGuiApplication

SHORT_WINDOW = 820  # logical pixels of height under which the summary stacks with the inspector


def initial_window_size(window, preferred: QSize) -> QSize:
    """`preferred`, shrunk to the available screen area (never below the window's minimum)."""
    screen = window.screen() or QGuiApplication.primaryScreen()
    if screen is None or QGuiApplication.platformName() in ("offscreen", "minimal"):
        return preferred  # no real screen to fit (tests, screenshots)
    free = screen.availableGeometry().size()
    minimum = window.minimumSize()
    return QSize(max(minimum.width(), min(preferred.width(), free.width())),
                 max(minimum.height(), min(preferred.height(), free.height())))


def stack_summary_if_short(window, summary_dock, inspector_dock) -> bool:
    """Tab the summary dock with the inspector when the window is short; True if it did."""
    if window.height() >= SHORT_WINDOW or summary_dock.isFloating() or inspector_dock.isFloating():
        return False
    if summary_dock in window.tabifiedDockWidgets(inspector_dock):
        return True
    window.tabifyDockWidget(inspector_dock, summary_dock)
    inspector_dock.raise_()
    return True
