"""UI responsiveness while the Train tab trains the seed CNN.

A QTimer (Qt.PreciseTimer, 10 ms) in the GUI thread records when it fires while the real
TrainTabWidget (controls, curves, filters, feature maps; results at the end) trains
resources/presets/seed_cnn.json. A gap between two firings longer than 10 ms means the
event loop was busy (or starved) for that long: the longest gap is the worst freeze a
user could feel. Reported: gap percentiles over the whole run, from Start to the end of
the test-set evaluation and the results panel filling.

    QT_QPA_PLATFORM=offscreen python benchmarks/ui_responsiveness.py [--images 12800] [--epochs 1]
    DISPLAY=:99 python benchmarks/ui_responsiveness.py        # the same under Xvfb
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default=str(REPO / "resources" / "presets" / "seed_cnn.json"))
    parser.add_argument("--images", type=int, default=12800, help="training images (default 12800)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=None, help="default: the preset's")
    parser.add_argument("--interval-ms", type=int, default=10)
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--worst", type=int, default=5, help="list the N longest gaps with when they happened")
    args = parser.parse_args(argv)

    import numpy as np
    from PySide6.QtCore import Qt, QTimer

    from visualcnn.engine import load_model_file
    from visualcnn.gui.app import create_application
    from visualcnn.gui.train_tab import TrainTabWidget, dataset_arrays

    app = create_application()
    dataset_arrays("mnist")  # loading the data set is start-up cost, not training
    preset = load_model_file(args.preset)
    tab = TrainTabWidget()
    tab.set_model_source(lambda: load_model_file(args.preset).model)
    tab.set_training_defaults(preset.training)
    tab.controls.train_images.setValue(args.images)
    tab.controls.epochs.setValue(args.epochs)
    if args.batch_size:
        tab.controls.batch_size.setValue(args.batch_size)
    tab.resize(1500, 950)
    tab.show()

    stamps: list[float] = []
    counts = {"progress": 0, "snapshots": 0}
    tab.controller.progressed.connect(lambda _r: counts.__setitem__("progress", counts["progress"] + 1))
    tab.controller.snapshot_taken.connect(lambda _s: counts.__setitem__("snapshots", counts["snapshots"] + 1))
    probe = QTimer()
    probe.setTimerType(Qt.TimerType.PreciseTimer)
    probe.setInterval(args.interval_ms)
    probe.timeout.connect(lambda: stamps.append(time.perf_counter()))
    result = {}

    def on_finished(model):
        # let the queued end-of-run work (results panel, last redraws) run under the probe too
        QTimer.singleShot(500, app.quit)

    tab.run_finished.connect(on_finished)
    events: list[tuple[float, str]] = []
    tab.controller.snapshot_taken.connect(lambda _s: events.append((time.perf_counter(), "snapshot")))
    tab.controller.evaluated.connect(lambda _r: events.append((time.perf_counter(), "evaluated")))
    tab.controller.epoch_finished.connect(lambda _r: events.append((time.perf_counter(), "epoch_finished")))
    tab.run_finished.connect(lambda _m: events.append((time.perf_counter(), "run_finished")))

    def begin_probe():
        probe.start()
        result["t0"] = time.perf_counter()
        QTimer.singleShot(200, press_start)

    def press_start():
        events.append((time.perf_counter(), "start pressed"))
        if not tab.start():
            raise SystemExit(f"could not start: {tab.controls.banner.text()}")

    # Let the window open and settle (its idle preview of the untrained network) first:
    # what is measured is the event loop while a run is going on.
    QTimer.singleShot(1500, begin_probe)
    app.exec()
    probe.stop()
    tab.shutdown()
    gaps_ms = np.diff(np.asarray(stamps)) * 1000.0
    out = {
        "preset": Path(args.preset).name, "images": args.images, "epochs": args.epochs,
        "batch_size": tab.training_settings().batch_size, "platform": app.platformName(),
        "run_seconds": round(stamps[-1] - result["t0"], 2), "ticks": int(gaps_ms.size),
        "progress_signals": counts["progress"], "snapshots": counts["snapshots"],
        "gap_ms": {"p50": round(float(np.percentile(gaps_ms, 50)), 2),
                   "p99": round(float(np.percentile(gaps_ms, 99)), 2),
                   "max": round(float(gaps_ms.max()), 2)},
        "gaps_over_20ms": int((gaps_ms > 20).sum()), "gaps_over_50ms": int((gaps_ms > 50).sum()),
        "load_average": os.getloadavg(), "cpus": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{out['preset']}: {args.images} images x {args.epochs} epoch(s), batch {out['batch_size']}, "
              f"platform {out['platform']}, {out['run_seconds']} s, {out['ticks']} timer ticks "
              f"({out['progress_signals']} progress signals, {out['snapshots']} snapshots)")
        print(f"10 ms probe gaps: p50 {out['gap_ms']['p50']} ms, p99 {out['gap_ms']['p99']} ms, "
              f"max {out['gap_ms']['max']} ms; gaps > 20 ms: {out['gaps_over_20ms']}, > 50 ms: {out['gaps_over_50ms']}")
        print(f"load average {out['load_average']} on {out['cpus']} CPUs")
        stamps_arr = np.asarray(stamps)
        for i in np.argsort(gaps_ms)[::-1][: args.worst]:
            start, end = stamps_arr[i], stamps_arr[i + 1]
            near = [name for t, name in events if start - 0.01 <= t <= end]
            print(f"  gap {gaps_ms[i]:6.1f} ms at t={start - result['t0']:6.2f} s" + (f" ({', '.join(near)})" if near else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
