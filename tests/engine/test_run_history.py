"""The "runs" section (engine/run_history.py): records built from the engine's reports stay
small, hostile sections are refused with one line naming the run and the field, the
table / CSV and the settings that differ."""

from __future__ import annotations

import copy
import csv
import io
import json
import math

import pytest

from visualcnn.engine.layers import ConfigError
from visualcnn.engine.project_sections import check_section
from visualcnn.engine.run_history import (MAX_RUNS, MAX_STEP_POINTS, add_run, check_runs_section,
                                          differing_settings, record_from_reports, run_table, runs_to_csv)
from visualcnn.engine.training import EpochReport, StepReport


def reports(epochs=2, batches=10, loss=2.0, val=True):
    out = []
    for e in range(1, epochs + 1):
        for b in range(1, batches + 1):
            batch_loss = loss / (e * batches + b)
            out.append(StepReport(e, epochs, b, batches, batch_loss, 0.5, batch_loss, 0.5 + b / 100, 1000.0,
                                  b * 32, 0.1, 0.1))
        out.append(EpochReport(e, epochs, loss / e, 0.8 + e / 100, (loss / e + 0.1) if val else None,
                               (0.7 + e / 50) if val else None, 1.0, 1000.0))
    return out


def record(lr=0.001, **kwargs):
    settings = {"optimizer": "adam", "learning_rate": lr, "batch_size": 32, "epochs": 2, "limit": 320}
    return record_from_reports(reports(**kwargs), settings, "MNIST, 320 training images", test_loss=0.4,
                               test_accuracy=0.9, duration=3.0, model="seed_cnn", params=34826)


def test_a_record_from_reports():
    r = record()
    assert r["epochs"] == 2 and r["batches"] == 10 and r["duration"] == 3.0 and r["status"] == "completed"
    assert r["curves"]["epoch"] == [1, 2] and r["curves"]["loss"] == [2.0, 1.0]
    assert r["final"] == {"loss": 1.0, "accuracy": 0.82, "val_loss": 1.1, "val_accuracy": 0.74,
                          "test_loss": 0.4, "test_accuracy": 0.9}
    assert r["best"]["val_loss"] == 1.1 and r["best"]["accuracy"] == 0.82
    # every batch kept while the run is short; x in epochs (epoch - 1 + batch / batches)
    assert len(r["steps"]["x"]) == 20 and r["steps"]["x"][0] == 0.1 and r["steps"]["x"][-1] == 2.0
    assert r["steps"]["loss"][0] == pytest.approx(2.0 / 11, rel=1e-4)


def test_no_validation_means_no_validation_curves():
    r = record(val=False)
    assert "val_loss" not in r["curves"] and "val_loss" not in r["final"] and "val_loss" not in r["best"]


def test_a_long_run_keeps_a_bounded_step_curve_of_bucket_means():
    epochs, batches = 5, 4000  # 20,000 steps
    settings = {"learning_rate": 0.1}
    r = record_from_reports(reports(epochs, batches, val=False), settings, "MNIST")
    steps = r["steps"]
    assert MAX_STEP_POINTS // 2 <= len(steps["x"]) <= MAX_STEP_POINTS
    assert steps["x"] == sorted(steps["x"]) and steps["x"][-1] == float(epochs)
    # each point is the mean of the batches it stands for: the mean of all points (equal
    # buckets) is the mean of all batches
    all_losses = [rep.batch_loss for rep in reports(epochs, batches, val=False) if isinstance(rep, StepReport)]
    assert sum(steps["loss"]) / len(steps["loss"]) == pytest.approx(sum(all_losses) / len(all_losses), rel=0.02)
    assert len(json.dumps(r)) < 20_000


def test_fifty_runs_stay_small():
    runs = []
    long = record_from_reports(reports(3, 3000), {"learning_rate": 0.001}, "MNIST")
    for _ in range(50):
        runs = add_run(runs, long)
    assert [r["id"] for r in runs] == list(range(1, 51))
    text = json.dumps(runs)
    assert len(text) < 1_000_000
    assert check_section("runs", json.loads(text)) == runs


def test_add_run_numbers_after_the_highest_and_keeps_the_newest():
    runs = add_run([dict(record(), id=7)], record())
    assert [r["id"] for r in runs] == [7, 8]
    many = [dict(record(), id=i) for i in range(1, MAX_RUNS + 1)]
    kept = add_run(many, record())
    assert len(kept) == MAX_RUNS and kept[0]["id"] == 2 and kept[-1]["id"] == MAX_RUNS + 1


@pytest.mark.parametrize("change, message", [
    (lambda r: r.update(duration=math.nan), '"runs": run 1: "duration" must be a number of seconds >= 0, '
                                            'received NaN'),
    (lambda r: r.update(duration="3s"), '"runs": run 1: "duration" must be a number'),
    (lambda r: r["final"].update(loss=math.inf), '"runs": run 1: "final.loss" must be a finite number, '
                                                 'received infinity'),
    (lambda r: r["final"].update(speed=3), '"runs": run 1: "final.speed" is not a metric'),
    (lambda r: r.update(epochs=True), '"runs": run 1: "epochs" must be a whole number >= 0, received True'),
    (lambda r: r.update(settings=[1, 2]), '"runs": run 1: "settings" must be an object, received a list of 2'),
    (lambda r: r["settings"].update(learning_rate=math.nan), '"runs": run 1: "settings.learning_rate" must be a '
                                                             'finite number, received NaN'),
    (lambda r: r["settings"].update(deep={"a": {"b": [1]}}), '"runs": run 1: "settings.deep.a.b" is nested too'),
    (lambda r: r["steps"].update(loss=[0.5] * 100_000), '"runs": run 1: "steps.loss" holds 100000 points, at most'),
    (lambda r: r["steps"].update(loss=r["steps"]["loss"][:3]), '"runs": run 1: "steps.loss" holds 3 points where'),
    (lambda r: r["curves"]["loss"].__setitem__(1, "x"), '"runs": run 1: "curves.loss" point 2 must be a finite'),
    (lambda r: r.update(dataset="x" * 100_000), '"runs": run 1: "dataset" must be a text of at most 500'),
    (lambda r: r.update(status="won"), '"runs": run 1: "status" must be one of completed, stopped'),
    (lambda r: r.update(colour="red"), '"runs": run 1: unknown field "colour"'),
    (lambda r: r.pop("started"), '"runs": run 1: "started" is missing'),
    (lambda r: r.update(id=-4), '"runs": run #1 in the list: "id" must be a whole number from 1'),
])
def test_hostile_records_are_refused_with_one_line(change, message):
    bad = copy.deepcopy(record())
    change(bad)
    with pytest.raises(ConfigError) as caught:
        check_section("runs", [bad])
    text = str(caught.value)
    assert text.startswith(message) and "\n" not in text


def test_the_second_run_is_named_and_the_section_shape_is_checked():
    good, bad = record(), dict(record(), id=2, epochs=-1)
    with pytest.raises(ConfigError, match=r'^"runs": run 2: "epochs"'):
        check_runs_section([good, bad])
    with pytest.raises(ConfigError, match=r'^"runs": run 1: "id" 1 is used by another run'):
        check_runs_section([good, dict(good)])
    with pytest.raises(ConfigError, match=r'^"runs": run #2 in the list must be an object, received str'):
        check_runs_section([good, "run"])
    with pytest.raises(ConfigError, match=r'^"runs" must be a list'):
        check_section("runs", {"id": 1})
    with pytest.raises(ConfigError, match=rf'^"runs" holds {MAX_RUNS + 1} runs'):
        check_runs_section([good] * (MAX_RUNS + 1))


def test_differing_settings_and_the_table():
    a, b, c = (dict(r, id=i) for i, r in enumerate((record(0.001), record(0.003), record(0.001)), start=1))
    c = dict(c, settings=dict(c["settings"], batch_size=64, schedule="constant"), dataset="Fashion-MNIST")
    # "schedule" missing from a and b means the default, constant: not a difference
    assert differing_settings([a, b, c]) == ["learning_rate", "batch_size", "dataset"]
    assert differing_settings([a]) == []
    columns, rows = run_table([a, b, c])
    keys = [col.key for col in columns]
    # what differs comes right after the run number, then the results
    assert keys[:5] == ["id", "settings.learning_rate", "settings.batch_size", "dataset", "final.test_accuracy"]
    assert keys[-1] == "settings.limit" and columns[-1].header == "training images"
    assert {col.key for col in columns if col.differs} == {"settings.learning_rate", "settings.batch_size",
                                                           "dataset"}
    assert rows[1][keys.index("settings.learning_rate")] == 0.003


def test_csv_has_a_row_per_run_and_no_formulas():
    a = record()
    b = add_run([a], dict(record(0.01), dataset="=HYPERLINK(\"x\")"))
    text = runs_to_csv(add_run([], a) + b[1:])
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 2 and rows[1]["settings.learning_rate"] == "0.01"
    assert rows[1]["dataset"].startswith("'=") and rows[0]["final.test_accuracy"] == "0.9"


def test_a_changing_learning_rate_is_kept_per_point_a_constant_one_is_not():
    def run(rates):
        out = []
        for b, rate in enumerate(rates, start=1):
            out.append(StepReport(1, 1, b, len(rates), 1.0, 0.5, 1.0, 0.5, 1.0, b, 0.1, 0.1, learning_rate=rate))
        return record_from_reports(out, {"learning_rate": 0.1}, "MNIST")

    assert "learning_rate" not in run([0.1] * 30)["steps"]
    stepped = run([0.1] * 2000 + [0.01] * 2000)  # a step schedule over 4,000 batches
    rates = stepped["steps"]["learning_rate"]
    assert len(rates) == len(stepped["steps"]["x"]) <= MAX_STEP_POINTS
    assert set(rates) == {0.1, 0.01} and rates == sorted(rates, reverse=True)  # the step stays a step
    drop = rates.index(0.01)
    assert stepped["steps"]["x"][drop - 1] <= 0.5 < stepped["steps"]["x"][drop]
    check_runs_section([dict(stepped)])
