"""The project's "runs" section: one small record per training run (engine/project_sections.py).

A record says what was trained and how it went, so a class can compare runs side by side:

    {"id": 3, "started": "2026-11-30T12:30:05Z", "source": "window", "status": "completed",
     "model": "seed_cnn", "params": 34826, "dataset": "MNIST, 2,000 training images",
     "settings": {"optimizer": "adam", "learning_rate": 0.001, ..., "limit": 2000},
     "duration": 41.2, "epochs": 2, "batches": 32,
     "final": {"loss": 0.21, "accuracy": 0.94, "val_loss": ..., "test_accuracy": 0.95},
     "best": {"loss": 0.21, "accuracy": 0.94, ...},
     "curves": {"epoch": [1, 2], "loss": [..], "accuracy": [..], "val_loss": [..], "val_accuracy": [..]},
     "steps": {"x": [0.03, ...], "loss": [...], "accuracy": [...], "learning_rate": [...]}}

Records stay small whatever the run's length: the per-step curve keeps at most
MAX_STEP_POINTS points (each the mean of the batches it stands for), the per-epoch curves
at most MAX_EPOCH_POINTS, numbers are rounded to 5 significant digits; a record is a few
kilobytes, so a project with 50 runs still saves in a blink. A "runs" section read from a
file is checked field by field (wrong types, NaN, oversized lists): one line names the run
and the field.

RunRecorder builds a record from the engine's reports (training.StepReport / EpochReport),
the one way the CLI (`visualcnn train --save`) and the window record a run;
run_table() gives the columns and rows that the window's table and the CSV share.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from .layers import ConfigError

MAX_RUNS = 500  # the oldest runs leave the history beyond this
MAX_STEP_POINTS = 500
MAX_EPOCH_POINTS = 1000
MAX_TEXT = 500  # characters in a text field (dataset, model name)
MAX_SETTINGS = 64  # keys in "settings"
MAX_SETTING_ITEMS = 64  # elements in one setting's list/object value (a schedule's boundaries)
STATUSES = ("completed", "stopped", "diverged", "failed")
SOURCES = ("window", "cli")
METRICS = ("loss", "accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy")
# Lower is better for losses; higher for accuracies (what "best" means per metric).
LOWER_IS_BETTER = {"loss", "val_loss", "test_loss"}
CURVE_KEYS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy")
STEP_KEYS = ("x", "loss", "accuracy", "learning_rate")
FIELDS = ("id", "started", "source", "status", "model", "params", "dataset", "settings", "duration", "epochs",
          "batches", "final", "best", "curves", "steps")
REQUIRED = ("id", "started", "settings", "dataset", "duration", "epochs")


# --- recording ----------------------------------------------------------------------

def _round(value):
    """5 significant digits: plenty to compare runs, and a third of the JSON of full floats."""
    if value is None:
        return None
    value = float(value)
    if not math.isfinite(value):
        return None
    return float(f"{value:.5g}")


class _StepCurve:
    """A bounded, evenly down-sampled per-step curve: each kept point is the mean of the
    `stride` batches before it; when the points reach MAX_STEP_POINTS, neighbours merge in
    pairs and the stride doubles, so any run length ends with MAX/2..MAX points. The
    learning rate is the one in force at each kept point's batch (a schedule's steps stay
    sharp), kept only when it changed during the run (else the settings say it)."""

    def __init__(self, limit: int = MAX_STEP_POINTS):
        self.limit = max(2, limit)
        self.stride = 1
        self.x: list[float] = []
        self.loss: list[float | None] = []
        self.accuracy: list[float | None] = []
        self.learning_rate: list[float | None] = []
        self._bucket = self._empty_bucket()

    @staticmethod
    def _empty_bucket():
        return {"n": 0, "x": 0.0, "loss": 0.0, "loss_n": 0, "acc": 0.0, "acc_n": 0, "lr": None}

    def add(self, x: float, loss: float | None, accuracy: float | None, learning_rate: float | None = None) -> None:
        b = self._bucket
        b["n"] += 1
        b["x"] = x
        if learning_rate is not None and math.isfinite(learning_rate):
            b["lr"] = learning_rate
        if loss is not None and math.isfinite(loss):
            b["loss"] += loss
            b["loss_n"] += 1
        if accuracy is not None and math.isfinite(accuracy):
            b["acc"] += accuracy
            b["acc_n"] += 1
        if b["n"] >= self.stride:
            self.flush()

    def flush(self) -> None:
        b = self._bucket
        if b["n"] == 0:
            return
        self.x.append(b["x"])
        self.loss.append(b["loss"] / b["loss_n"] if b["loss_n"] else None)
        self.accuracy.append(b["acc"] / b["acc_n"] if b["acc_n"] else None)
        self.learning_rate.append(b["lr"])
        self._bucket = self._empty_bucket()
        if len(self.x) >= self.limit:
            self._halve()

    def _halve(self) -> None:
        def pairs(values):
            merged = []
            for i in range(0, len(values) - 1, 2):
                a, b = values[i], values[i + 1]
                known = [v for v in (a, b) if v is not None]
                merged.append(sum(known) / len(known) if known else None)
            if len(values) % 2:
                merged.append(values[-1])
            return merged

        def later(values):
            return [values[i + 1] if i + 1 < len(values) else values[i] for i in range(0, len(values), 2)]

        self.x, self.learning_rate = later(self.x), later(self.learning_rate)
        self.loss, self.accuracy = pairs(self.loss), pairs(self.accuracy)
        self.stride *= 2

    def to_dict(self) -> dict:
        self.flush()
        data = {"x": [round(x, 4) for x in self.x], "loss": [_round(v) for v in self.loss]}
        if any(v is not None for v in self.accuracy):
            data["accuracy"] = [_round(v) for v in self.accuracy]
        if len({v for v in self.learning_rate if v is not None}) > 1:
            data["learning_rate"] = [_round(v) for v in self.learning_rate]
        return data


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class RunRecorder:
    """Collects one run's reports and turns them into a record.

        recorder = RunRecorder(settings, "MNIST, 2,000 training images", source="cli")
        for report in run: recorder.add(report)
        record = recorder.finish("completed", test_loss=0.1, test_accuracy=0.97)
    """

    def __init__(self, settings: dict, dataset: str, source: str = "window", model: str | None = None,
                 params: int | None = None, started: str | None = None):
        self.settings = dict(settings)
        self.dataset = str(dataset)[:MAX_TEXT]
        self.source = source
        self.model = None if model is None else str(model)[:MAX_TEXT]
        self.params = params
        self.started = started or _now_iso()
        self._clock = time.monotonic()
        self._steps = _StepCurve()
        self._epochs: dict[str, list] = {key: [] for key in CURVE_KEYS}
        self.batches = 0

    def add(self, report) -> None:
        """A StepReport or EpochReport (anything else is ignored)."""
        if hasattr(report, "batch") and hasattr(report, "batches"):
            self.batches = int(report.batches)
            x = report.epoch - 1 + report.batch / report.batches
            self._steps.add(x, report.batch_loss, report.batch_accuracy, getattr(report, "learning_rate", None))
        elif hasattr(report, "val_loss") and hasattr(report, "epoch"):
            for key, value in (("epoch", report.epoch), ("loss", report.loss), ("accuracy", report.accuracy),
                               ("val_loss", report.val_loss), ("val_accuracy", report.val_accuracy)):
                self._epochs[key].append(value)

    @property
    def epochs_run(self) -> int:
        return len(self._epochs["epoch"])

    def finish(self, status: str = "completed", test_loss: float | None = None,
               test_accuracy: float | None = None, duration: float | None = None) -> dict:
        """The record (checked: what check_record accepts)."""
        if duration is None:
            duration = time.monotonic() - self._clock
        curves = _epoch_curves(self._epochs)
        final, best = {}, {}
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            values = [v for v in self._epochs[key] if v is not None and math.isfinite(v)]
            if values:
                final[key] = _round(self._epochs[key][-1]) if self._epochs[key][-1] is not None else None
                best[key] = _round(min(values) if key in LOWER_IS_BETTER else max(values))
        final = {k: v for k, v in final.items() if v is not None}
        for key, value in (("test_loss", test_loss), ("test_accuracy", test_accuracy)):
            if value is not None and math.isfinite(value):
                final[key] = best[key] = _round(value)
        record = {"id": 1, "started": self.started, "source": self.source, "status": status}
        if self.model is not None:
            record["model"] = self.model
        if self.params is not None:
            record["params"] = int(self.params)
        record.update({"dataset": self.dataset, "settings": _plain_settings(self.settings),
                       "duration": round(float(duration), 2), "epochs": self.epochs_run, "batches": self.batches,
                       "final": final, "best": best, "curves": curves, "steps": self._steps.to_dict()})
        return check_record(record, "the new run")


def _epoch_curves(epochs: dict) -> dict:
    """Per-epoch lists; beyond MAX_EPOCH_POINTS epochs every n-th epoch is kept (and the last)."""
    n = len(epochs["epoch"])
    keep = list(range(n))
    if n > MAX_EPOCH_POINTS:
        step = math.ceil(n / (MAX_EPOCH_POINTS - 1))
        keep = list(range(0, n - 1, step)) + [n - 1]
    curves = {"epoch": [int(epochs["epoch"][i]) for i in keep]}
    for key in CURVE_KEYS[1:]:
        values = [epochs[key][i] for i in keep]
        if any(v is not None for v in values):
            curves[key] = [_round(v) for v in values]
    return curves


def _plain_settings(settings: dict) -> dict:
    """Settings as JSON values (a callbacks object stays an object)."""
    return json.loads(json.dumps(settings, default=str))


def record_from_reports(reports, settings: dict, dataset: str, status: str = "completed", **kwargs) -> dict:
    """One record from a finished run's reports (the RunRecorder in one call).
    kwargs: source, model, params, started (RunRecorder) and test_loss, test_accuracy, duration."""
    finish_keys = ("test_loss", "test_accuracy", "duration")
    recorder = RunRecorder(settings, dataset, **{k: v for k, v in kwargs.items() if k not in finish_keys})
    for report in reports:
        recorder.add(report)
    return recorder.finish(status, **{k: v for k, v in kwargs.items() if k in finish_keys})


def add_run(runs: list | None, record: dict) -> list:
    """The history with `record` appended under the next free id (the oldest runs leave
    beyond MAX_RUNS)."""
    runs = list(runs or [])
    record = dict(record)
    record["id"] = max((r["id"] for r in runs), default=0) + 1
    runs.append(record)
    return runs[-MAX_RUNS:]


def append_run_to_file(path, record: dict, earlier: list | None = None) -> None:
    """Add `record` to the "runs" section of the project file at `path` (just written by
    model.save), after the `earlier` runs; the file is rewritten atomically."""
    from .model_io import write_text_atomic

    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    data["runs"] = add_run(earlier, record)
    write_text_atomic(path, json.dumps(data) + "\n")


# --- checking -------------------------------------------------------------------------

def check_runs_section(value):
    """The section as this module accepts it (project_sections already checked it is a list):
    every record checked; ConfigError names the run and the field."""
    if len(value) > MAX_RUNS:
        raise ConfigError(f'"runs" holds {len(value)} runs, at most {MAX_RUNS} are kept; '
                          "delete old runs from the file")
    seen = set()
    runs = []
    for position, record in enumerate(value, start=1):
        named = isinstance(record, dict) and _is_int(record.get("id")) and record["id"] >= 1
        where = f"run {record['id']}" if named else f"run #{position} in the list"
        checked = check_record(record, where)
        if checked["id"] in seen:
            raise ConfigError(f'"runs": {where}: "id" {checked["id"]} is used by another run; give each run '
                              "its own id")
        seen.add(checked["id"])
        runs.append(checked)
    return runs


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _describe(v) -> str:
    if isinstance(v, float) and not math.isfinite(v):
        return "NaN" if v != v else "infinity"
    if isinstance(v, (list, dict)):
        return f"a {'list' if isinstance(v, list) else 'object'} of {len(v)}"
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def check_record(record, where: str = "the run") -> dict:
    """One record as the history keeps it; ConfigError: '"runs": run 3: "duration" must be ...'."""
    def fail(field: str, problem: str):
        raise ConfigError(f'"runs": {where}: "{field}" {problem}')

    if not isinstance(record, dict):
        raise ConfigError(f'"runs": {where} must be an object, received {type(record).__name__}')
    for key in record:
        if key not in FIELDS:
            raise ConfigError(f'"runs": {where}: unknown field "{str(key)[:40]}"; known fields: {", ".join(FIELDS)}')
    for key in REQUIRED:
        if key not in record:
            fail(key, "is missing")
    out = {}
    if not _is_int(record["id"]) or record["id"] < 1:
        fail("id", f"must be a whole number from 1, received {_describe(record['id'])}")
    out["id"] = record["id"]
    started = record["started"]
    if not isinstance(started, str) or len(started) > 40:
        fail("started", f"must be a date and time such as \"2026-11-30T12:30:05Z\", received {_describe(started)}")
    out["started"] = started
    for key, allowed in (("source", SOURCES), ("status", STATUSES)):
        if key in record:
            if record[key] not in allowed:
                fail(key, f"must be one of {', '.join(allowed)}, received {_describe(record[key])}")
            out[key] = record[key]
    for key in ("model", "dataset"):
        if key in record:
            if not isinstance(record[key], str) or len(record[key]) > MAX_TEXT:
                fail(key, f"must be a text of at most {MAX_TEXT} characters, received {_describe(record[key])}")
            out[key] = record[key]
    for key in ("params", "epochs", "batches"):
        if key in record:
            if not _is_int(record[key]) or not 0 <= record[key] <= 10**12:
                fail(key, f"must be a whole number >= 0, received {_describe(record[key])}")
            out[key] = record[key]
    if not _is_number(record["duration"]) or record["duration"] < 0:
        fail("duration", f"must be a number of seconds >= 0, received {_describe(record['duration'])}")
    out["duration"] = float(record["duration"])
    out["settings"] = _check_settings(record["settings"], fail)
    for key in ("final", "best"):
        if key in record:
            out[key] = _check_metrics(record[key], key, fail)
    if "curves" in record:
        out["curves"] = _check_curves(record["curves"], "curves", CURVE_KEYS, MAX_EPOCH_POINTS, fail)
    if "steps" in record:
        out["steps"] = _check_curves(record["steps"], "steps", STEP_KEYS, MAX_STEP_POINTS, fail)
    return out


def _check_settings(settings, fail) -> dict:
    if not isinstance(settings, dict):
        fail("settings", f"must be an object, received {_describe(settings)}")
    if len(settings) > MAX_SETTINGS:
        fail("settings", f"holds {len(settings)} settings, at most {MAX_SETTINGS}")
    for key, value in settings.items():
        if len(key) > 60:
            fail("settings", f"has a setting name longer than 60 characters: {_describe(key)}")
        _check_setting_value(value, f"settings.{key}", fail, depth=0)
    return dict(settings)


def _check_setting_value(value, field: str, fail, depth: int) -> None:
    """JSON scalars, or small lists/objects of them (a callback's arguments), two levels deep."""
    if value is None or isinstance(value, (bool, str)):
        if isinstance(value, str) and len(value) > MAX_TEXT:
            fail(field, f"must be a text of at most {MAX_TEXT} characters")
        return
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            fail(field, f"must be a finite number, received {_describe(value)}")
        return
    if isinstance(value, (list, dict)):
        if depth >= 2:
            fail(field, "is nested too deeply (at most two levels of lists or objects)")
        if len(value) > MAX_SETTING_ITEMS:
            fail(field, f"holds {len(value)} items, at most {MAX_SETTING_ITEMS}")
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            _check_setting_value(item, f"{field}.{key}", fail, depth + 1)
        return
    fail(field, f"must be a number, text, true/false, list or object, received {_describe(value)}")


def _check_metrics(metrics, key: str, fail) -> dict:
    if not isinstance(metrics, dict):
        fail(key, f"must be an object of metrics, received {_describe(metrics)}")
    for name, value in metrics.items():
        if name not in METRICS:
            fail(f"{key}.{str(name)[:40]}", f"is not a metric; known: {', '.join(METRICS)}")
        if not _is_number(value):
            fail(f"{key}.{name}", f"must be a finite number, received {_describe(value)}")
    return {name: float(value) for name, value in metrics.items()}


def _check_curves(curves, key: str, names: tuple, limit: int, fail) -> dict:
    if not isinstance(curves, dict):
        fail(key, f"must be an object of lists, received {_describe(curves)}")
    length = None
    out = {}
    for name, values in curves.items():
        field = f"{key}.{str(name)[:40]}"
        if name not in names:
            fail(field, f"is not a curve; known: {', '.join(names)}")
        if not isinstance(values, list):
            fail(field, f"must be a list of numbers, received {_describe(values)}")
        if len(values) > limit:
            fail(field, f"holds {len(values)} points, at most {limit}")
        if length is not None and len(values) != length:
            fail(field, f"holds {len(values)} points where the other curves hold {length}")
        length = len(values)
        for i, v in enumerate(values):
            if v is None and name not in ("epoch", "x"):
                continue  # a metric missing at that point (no validation yet)
            if not _is_number(v):
                fail(field, f"point {i + 1} must be a finite number, received {_describe(v)}")
        out[name] = [None if v is None else (int(v) if name == "epoch" else float(v)) for v in values]
    return out


# --- comparing ------------------------------------------------------------------------

def setting_value(record: dict, key: str):
    """A record's setting; a TrainingConfig field a record leaves out has its default
    (the config writes some fields only when they differ from it, e.g. "schedule")."""
    settings = record.get("settings", {})
    if key in settings:
        return settings[key]
    from .training_config import TrainingConfig

    fields = TrainingConfig.__dataclass_fields__
    if key in fields:
        return getattr(TrainingConfig(), key)
    return None


def setting_keys(records: list) -> list[str]:
    """Every setting any record has, in TrainingConfig's order first, then the others by name."""
    from .training_config import TrainingConfig

    present = {key for record in records for key in record.get("settings", {})}
    ordered = [key for key in TrainingConfig.__dataclass_fields__ if key in present]
    return ordered + sorted(present - set(ordered))


def differing_settings(records: list) -> list[str]:
    """The settings whose value is not the same in every record ("dataset" too when the
    runs trained on different data): what the table highlights."""
    if len(records) < 2:
        return []
    keys = [key for key in setting_keys(records)
            if len({json.dumps(setting_value(r, key), sort_keys=True) for r in records}) > 1]
    if len({r.get("dataset") for r in records}) > 1:
        keys.append("dataset")
    return keys


@dataclass(frozen=True)
class Column:
    key: str  # "id", "final.test_accuracy", "settings.learning_rate", ...
    header: str  # what the table and the CSV show
    numeric: bool
    differs: bool = False  # a setting (or the dataset) that is not the same in every run


# Cause, then effect: after the run number come the settings that differ (run_table),
# then how the run did, then where and when it ran, then the settings every run shares.
SUMMARY_COLUMNS = (
    ("id", "run", True),
    ("final.test_accuracy", "test accuracy", True), ("best.val_accuracy", "best val accuracy", True),
    ("final.val_accuracy", "val accuracy", True), ("final.accuracy", "train accuracy", True),
    ("final.test_loss", "test loss", True), ("final.val_loss", "val loss", True), ("final.loss", "train loss", True),
    ("epochs", "epochs", True), ("duration", "seconds", True), ("status", "status", False),
    ("dataset", "dataset", False), ("model", "model", False), ("params", "params", True),
    ("started", "started (UTC)", False),
)
SETTING_HEADERS = {"loss": "loss function", "limit": "training images"}


def run_table(records: list) -> tuple[list[Column], list[list]]:
    """The columns and rows of the run table (window and CSV): the run number, the settings
    that differ between runs (highlighted), the results, then the settings all runs share.
    A column no run has a value for is left out (no validation split: no val columns)."""
    differ = differing_settings(records)
    summary = []
    for key, header, numeric in SUMMARY_COLUMNS:
        if key == "id" or any(cell_value(r, key) is not None for r in records):
            summary.append(Column(key, header, numeric, key in differ))
    settings = []
    for key in setting_keys(records):
        values = [setting_value(r, key) for r in records]
        numeric = all(_is_number(v) for v in values if v is not None)
        settings.append(Column(f"settings.{key}", SETTING_HEADERS.get(key, key.replace("_", " ")), numeric,
                               key in differ))
    columns = summary[:1] + [c for c in settings if c.differs] + [c for c in summary[1:] if c.differs] \
        + [c for c in summary[1:] if not c.differs] + [c for c in settings if not c.differs]
    rows = [[cell_value(r, c.key) for c in columns] for r in records]
    return columns, rows


def cell_value(record: dict, key: str):
    if key.startswith("settings."):
        return setting_value(record, key[len("settings."):])
    if "." in key:
        group, name = key.split(".", 1)
        return record.get(group, {}).get(name)
    return record.get(key)


def cell_text(value, key: str = "") -> str:
    """How a cell reads: accuracies as percentages, other numbers to 4 places, lists and
    objects as compact JSON."""
    if value is None:
        return ""
    if "accuracy" in key and _is_number(value):
        return f"{value:.2%}"
    if key.startswith(("final.", "best.")) and _is_number(value):
        return f"{value:.4f}"  # one column, one number of places: easier to compare down the column
    if key == "params" and _is_number(value):
        return f"{value:,}"
    if key == "duration" and _is_number(value):
        return f"{value:.1f}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-3 and value else f"{value:.4f}".rstrip("0").rstrip(".")
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def runs_to_csv(records: list) -> str:
    """The run table as CSV text (one row per run, the table's columns). A text cell that a
    spreadsheet would read as a formula (starting with = + - @) is prefixed with '."""
    columns, rows = run_table(records)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([c.key for c in columns])
    for row in rows:
        cells = []
        for value in row:
            if isinstance(value, float):
                text = repr(value)
            else:
                text = cell_text(value)
                if isinstance(value, (str, list, dict)) and text[:1] in ("=", "+", "-", "@"):
                    text = "'" + text
            cells.append(text)
        writer.writerow(cells)
    return out.getvalue()
