"""Training throughput inside the Train tab vs headless, same model and batch size, one process.

"Headless" is the engine's own loop, engine.training.train() driven in the main thread
with nothing else running: the same generator `visualcnn bench` times (engine/benchmark.py),
here over whole epochs so that both sides are measured the same way. "In the window" is the real TrainTabWidget, shown, with every live panel
(curves, filters, feature maps of the probe) updating; its rate is the worker's
StepReport.images_per_second at the last batch of an epoch (images of that epoch / wall
time of that epoch, so the snapshots and probe forward passes the worker makes between
batches are included).

Rounds alternate headless / window so that load from other processes on the machine hits
both sides alike (each round's ratio compares neighbours in time); epoch 1 of every run is dropped (numba cache loading, first allocations).

    QT_QPA_PLATFORM=offscreen python benchmarks/gui_throughput.py [--images 6400] [--epochs 3] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def headless_rates(preset: str, x, y, batch_size: int, epochs: int, seed: int) -> list[float]:
    from visualcnn.engine import load_model_file
    from visualcnn.engine.model_io import compile_from_config
    from visualcnn.engine.training import EpochReport, train

    model_file = load_model_file(preset)
    model = model_file.model
    model.build(seed=seed)
    compile_from_config(model, model_file.training)
    rates = []
    for report in train(model, x, y, batch_size=batch_size, epochs=epochs, seed=seed):
        if isinstance(report, EpochReport):
            rates.append(report.images_per_second)
    return rates


def thread_cpu_seconds(native_id: int) -> float:
    """User + system CPU time of one thread of this process (Linux /proc)."""
    try:
        with open(f"/proc/self/task/{native_id}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def window_rates(app, tab, epochs: int) -> tuple[list[float], float]:
    """Per-epoch images/s of one run in the window, and the GUI thread's share of one core."""
    import threading

    rates: list[float] = []
    gui = threading.get_native_id()

    def on_progressed(report):
        if report.batch == report.batches:  # the worker always emits an epoch's last batch
            rates.append(report.images_per_second)

    tab.controller.progressed.connect(on_progressed)
    tab.run_finished.connect(app.quit)
    tab.controls.epochs.setValue(epochs)
    cpu0, wall0 = thread_cpu_seconds(gui), time.perf_counter()
    if not tab.start():
        raise SystemExit(f"could not start: {tab.controls.banner.text()}")
    app.exec()
    gui_share = (thread_cpu_seconds(gui) - cpu0) / (time.perf_counter() - wall0)
    tab.controller.progressed.disconnect(on_progressed)
    tab.run_finished.disconnect(app.quit)
    return rates, gui_share


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default=str(REPO / "resources" / "presets" / "seed_cnn.json"))
    parser.add_argument("--images", type=int, default=6400)
    parser.add_argument("--epochs", type=int, default=3, help="per run; the first is dropped")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from PySide6.QtCore import QTimer

    from visualcnn.engine import load_model_file
    from visualcnn.gui.app import create_application
    from visualcnn.gui.train_tab import TrainTabWidget, dataset_arrays

    app = create_application()
    data = dataset_arrays("mnist")
    training = load_model_file(args.preset).training
    batch_size, seed = training.batch_size, training.seed
    x, y = data.x_train[: args.images], data.y_train[: args.images]

    tab = TrainTabWidget()
    tab.set_model_source(lambda: load_model_file(args.preset).model)
    tab.set_training_defaults(training)
    tab.controls.train_images.setValue(args.images)
    tab.resize(1500, 950)
    tab.show()
    QTimer.singleShot(1000, app.quit)  # open and settle (the idle preview) before measuring
    app.exec()

    rounds = []
    for index in range(args.rounds):
        head = headless_rates(args.preset, x, y, batch_size, args.epochs, seed)[1:]
        win, gui_share = window_rates(app, tab, args.epochs)
        win = win[1:]
        rounds.append({"headless": [round(r) for r in head], "window": [round(r) for r in win],
                       "ratio": round(statistics.mean(win) / statistics.mean(head), 3),
                       "gui_thread_cpu_share": round(gui_share, 3)})
        print(f"round {index + 1}: headless {rounds[-1]['headless']} images/s, "
              f"window {rounds[-1]['window']} images/s, ratio {rounds[-1]['ratio']}, "
              f"GUI thread busy {gui_share:.0%} of one core", file=sys.stderr)
    tab.shutdown()
    headless = statistics.median(r for round_ in rounds for r in round_["headless"])
    window = statistics.median(r for round_ in rounds for r in round_["window"])
    out = {"preset": Path(args.preset).name, "batch_size": batch_size, "images": args.images,
           "epochs_per_run": args.epochs, "rounds": rounds, "headless_median": round(headless),
           "window_median": round(window), "ratio": round(window / headless, 3),
           "paired_ratio_median": statistics.median(r["ratio"] for r in rounds),
           "headless_source": "engine.training.train (visualcnn bench does not exist yet)",
           "platform": app.platformName(), "load_average": os.getloadavg(), "cpus": os.cpu_count()}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{out['preset']}, batch {batch_size}, {args.images} images, epochs 2..{args.epochs} of "
              f"{args.rounds} alternating rounds ({out['platform']}):")
        print(f"  headless (engine.training.train): median {out['headless_median']} images/s")
        print(f"  in the window (StepReport.images_per_second): median {out['window_median']} images/s")
        print(f"  ratio of the medians window / headless: {out['ratio']:.3f}; median of the per-round "
              f"ratios: {out['paired_ratio_median']:.3f}")
        print(f"  GUI thread CPU while training: "
              f"{statistics.median(r['gui_thread_cpu_share'] for r in rounds):.0%} of one core (median)")
        print(f"  load average {out['load_average']} on {out['cpus']} CPUs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
