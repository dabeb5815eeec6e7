"""PySide6 6.12 on CPython 3.11 drops a reference to None on every void call; the gui package pins it."""

from __future__ import annotations

import sys

import visualcnn.gui as gui  # importing the package applies the workaround when needed

CALLS = 20_000  # far more than None's ~5,000 references at start-up


def test_many_void_qt_calls_do_not_exhaust_none(qapp):
    from PySide6.QtWidgets import QLabel, QSpinBox

    label, spin = QLabel(), QSpinBox()
    before = sys.getrefcount(None)
    for i in range(CALLS):
        label.setText("x")
        spin.setValue(i % 50)
    lost = before - sys.getrefcount(None)
    if lost <= 0:
        # This build keeps its references: the workaround must not have been applied.
        assert not gui.QT_SINGLETON_LEAK_PINNED or sys.version_info >= (3, 12)
    else:
        # A leaking build: only the pin keeps None alive, with room for a lifetime of calls.
        assert gui.QT_SINGLETON_LEAK_PINNED, f"None lost {lost} references in {CALLS * 2} calls, unpinned"
        assert sys.getrefcount(None) > 10**6 * lost


def test_the_probe_detects_a_leaking_build(monkeypatch):
    """The detection itself: a fake None that loses references is pinned, a sound one is not."""
    if sys.version_info >= (3, 12):
        assert gui._pin_singletons_if_qt_leaks_them() is False  # immortal singletons: nothing to do
        return
    counts = iter([5000, 5000, 5000, 4992])  # None around the probe's 8 calls: sound, then leaking
    pinned = []
    monkeypatch.setattr(gui.sys, "getrefcount", lambda obj: next(counts))

    class FakeSsize:
        @staticmethod
        def from_address(address):
            pinned.append(address)
            return type("Cell", (), {"value": 0})()

    import ctypes

    monkeypatch.setattr(ctypes, "c_ssize_t", FakeSsize)
    assert gui._pin_singletons_if_qt_leaks_them() is False and not pinned
    assert gui._pin_singletons_if_qt_leaks_them() is True
    assert pinned == [id(None), id(True), id(False)]
