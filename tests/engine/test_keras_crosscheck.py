"""Models built in real Keras 3 (fixtures from keras_fixtures/make_fixtures.py) read back identically."""

import gzip
import json
from pathlib import Path

import pytest

from visualcnn.engine import ConfigError, read_model_file, render_summary
from visualcnn.engine.analysis import analyse
from visualcnn.engine.layers import layer_from_config

FIXTURES = json.loads(gzip.decompress((Path(__file__).parent / "keras_fixtures" / "keras_models.json.gz").read_bytes()))
VALID = [c for c in FIXTURES["cases"] if c["valid"]]
REFUSED = [c for c in FIXTURES["cases"] if not c["valid"]]


def test_fixture_set_is_large_and_mixed():
    assert len(VALID) > 300 and len(REFUSED) > 20


@pytest.mark.parametrize("case", VALID, ids=lambda c: json.loads(c["json"])["config"]["name"])
def test_keras_json_gives_keras_shapes_and_params(case):
    model = read_model_file(case["json"]).model
    report = model.analyse()
    assert report.error is None
    got = [{"name": r.name, "class_name": r.layer.class_name, "output_shape": list(r.output_shape),
            "params": r.params, "trainable_params": r.trainable_params} for r in report.rows]
    assert got == case["rows"]
    if "summary" in case:
        assert render_summary(model.name, report, 76) == case["summary"].rstrip("\n")


@pytest.mark.parametrize("case", REFUSED, ids=lambda c: c["keras_error"][:40])
def test_configs_keras_refuses_are_refused(case):
    with pytest.raises(ConfigError):
        layers = [layer_from_config(entry["class_name"], entry["config"]) for entry in case["layers"]]
        analyse(case["input_shape"], layers).raise_for_error()
