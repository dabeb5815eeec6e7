"""The PySide6 + pyqtgraph window. May import the engine; the engine never imports this."""

import sys


def _pin_singletons_if_qt_leaks_them() -> bool:
    """Work around PySide6 builds that return None/True/False without a new reference.

    Seen with PySide6 6.12.0 on CPython 3.11: every call of a void Qt method
    (QLabel.setText, QSpinBox.setValue, ...) drops one reference to None, so a window
    aborts with "none_dealloc" after a few thousand edits. CPython 3.12+ makes these
    singletons immortal (PEP 683), which is what those builds assume; on older Pythons we
    do the same by hand, and only when a probe shows the leak. Returns True if applied.
    """
    if sys.version_info >= (3, 12):
        return False
    import ctypes

    from PySide6.QtCore import QObject

    probe = QObject()
    before = sys.getrefcount(None)
    for _ in range(8):
        probe.setObjectName("probe")
    if sys.getrefcount(None) >= before:
        return False
    for singleton in (None, True, False):
        # ob_refcnt is the first field of every PyObject; 2**40 references never run out.
        ctypes.c_ssize_t.from_address(id(singleton)).value += 1 << 40
    return True


QT_SINGLETON_LEAK_PINNED = _pin_singletons_if_qt_leaks_them()
