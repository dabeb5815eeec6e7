"""PySide6 6.12 on CPython 3.11 drops a reference to None on every void call; the gui package pins it."""

from __future__ import annotations

import sys

import visualcnn.gui  # noqa: F401 - importing the package applies the workaround when needed


def test_many_void_qt_calls_do_not_exhaust_none(qapp):
    from PySide6.QtWidgets import QLabel, QSpinBox

    label, spin = QLabel(), QSpinBox()
    for i in range(20_000):  # far more than None's ~5,000 references at start-up
        label.setText("x")
        spin.setValue(i % 50)
    assert sys.getrefcount(None) > 0
