"""The longest gap between the ticks of a 10 ms QTimer while something runs: how long the
window's event loop was kept from drawing and answering the mouse (issue 13: no stall over
50 ms while occlusion or activation maximisation runs)."""

from __future__ import annotations

import time

from PySide6.QtCore import QTimer

TICK_MS = 10


def longest_gap_ms(qtbot, start, done, timeout_ms: int = 60000) -> float:
    """Call start(), then tick every 10 ms until done() is true; the longest time between two
    ticks (or between the start and the first tick), in ms."""
    stamps: list[float] = []
    timer = QTimer()
    timer.setInterval(TICK_MS)
    timer.timeout.connect(lambda: stamps.append(time.perf_counter()))
    timer.start()
    stamps.append(time.perf_counter())
    start()
    qtbot.waitUntil(done, timeout=timeout_ms)
    timer.stop()
    stamps.append(time.perf_counter())
    return max(b - a for a, b in zip(stamps, stamps[1:])) * 1000
