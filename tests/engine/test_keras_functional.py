"""Keras Functional models read back identically: fixtures from real Keras 3 (make_functional_fixtures.py),
checked without Keras; and the graph form of VisualCNN's own files."""

import gzip
import json
from pathlib import Path

import pytest

from visualcnn.engine import ConfigError, read_model_file, render_summary
from visualcnn.engine.summary import keras_order

FIXTURES = json.loads(gzip.decompress(
    (Path(__file__).parent / "keras_fixtures" / "functional_models.json.gz").read_bytes()))
CASES = FIXTURES["cases"]


def our_rows(report):
    return [{"name": r.name, "class_name": r.layer.class_name, "output_shape": list(r.output_shape),
             "params": r.params, "trainable_params": r.trainable_params} for r in report.rows]


def check_against_keras(case):
    """Shapes and parameter counts layer by layer, and the summary text, as Keras gave them."""
    model = read_model_file(case["json"]).model
    report = model.analyse()
    assert report.error is None, report.error
    ours = {row["name"]: row for row in our_rows(report)}
    assert [ours.get(row["name"]) for row in case["rows"]] == case["rows"]
    assert len(ours) == len(case["rows"])
    for width, text in case["summaries"].items():
        assert render_summary(model.name, report, int(width), functional=True) + "\n" == text, f"width {width}"


def test_fixtures_are_many_and_cover_branches_and_every_class():
    assert len(CASES) >= 40
    used = {c for case in CASES for c in case["classes"]}
    assert set(FIXTURES["classes"]) <= used, sorted(set(FIXTURES["classes"]) - used)
    assert {"Add", "Concatenate"} <= used
    assert sum("Connected to" in next(iter(case["summaries"].values())) for case in CASES) >= 20


@pytest.mark.parametrize("case", CASES, ids=lambda c: json.loads(c["json"])["config"]["name"])
def test_keras_functional_json_gives_keras_shapes_params_and_summary(case):
    check_against_keras(case)


def test_keras_order_sorts_by_depth_then_walk_from_the_output():
    # input -> a -> b -> add(b, c) with c fed by the input: c is as deep as b, met later
    inbound = [(-1,), (0,), (-1,), (1, 2)]
    assert keras_order(inbound) == [-1, 0, 1, 2, 3]
    # a skip straight from the input: the input is deepest, the longer branch first
    assert keras_order([(-1,), (0,), (1, -1)]) == [-1, 0, 1, 2]
    assert keras_order([(-1,), (-1,), (1, 0)]) == [-1, 1, 0, 2]
