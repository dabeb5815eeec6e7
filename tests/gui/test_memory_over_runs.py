"""Memory stays flat over repeated training runs in one window (issue 16: +219 MB per run)."""

from __future__ import annotations

import gc
import os

RUNS = 10
BOUND = 50 * 2**20  # bytes: the growth allowed between run 1 and run 10


def rss_bytes() -> int:
    """Resident set size of this process, from /proc/self/statm (Linux)."""
    gc.collect()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_ten_runs_in_one_window_keep_memory_flat(qtbot, seed_window):
    panel = seed_window.train_panel
    controls = panel.controls
    controls.train_images.setValue(1024)
    controls.batch_size.setValue(512)  # big batches: the leak was the model's per-batch buffers
    controls.epochs.setValue(1)
    after = []
    for _ in range(RUNS):
        with qtbot.waitSignal(panel.run_finished, timeout=120_000):
            assert panel.start()
        qtbot.waitUntil(lambda: panel.controller._thread is None, timeout=10_000)
        qtbot.wait(10)  # let deferred deletes run
        after.append(rss_bytes())
    # runs in a row are one undo step holding one copy of the weights, not ten
    assert [seed_window.undo_stack.command(i).text() for i in range(seed_window.undo_stack.count())] == [
        "Change batch size", "Train network"]
    growth = after[-1] - after[0]
    assert growth < BOUND, f"RSS grew by {growth / 2**20:.0f} MiB over {RUNS} runs: " + \
        ", ".join(f"{a / 2**20:.0f}" for a in after)
