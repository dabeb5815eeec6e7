"""Application start-up shared by the window command, the screenshot mode and the tests."""

from __future__ import annotations

import sys

from PySide6.QtWidgets import QApplication

APP_NAME = "VisualCNN"
ORGANISATION = "VisualCNN"


def create_application(argv: list[str] | None = None) -> QApplication:
    """The QApplication (reused if one exists), configured once for the whole program."""
    app = QApplication.instance()
    if app is None:
        app = QApplication(list(argv) if argv is not None else sys.argv[:1])
        app.setStyle("Fusion")  # the same look on every platform, as in the screenshots
    app.setApplicationName(APP_NAME)
    app.setOrganizationName(ORGANISATION)
    app.setApplicationDisplayName(APP_NAME)
    try:
        import pyqtgraph as pg

        # Once, before any plot exists: images are (rows, cols) like numpy and MNIST.
        pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)
    except ImportError:  # the builder does not need pyqtgraph; the training panels do
        pass
    return app
