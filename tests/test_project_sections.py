"""Project sections (dataset, resume, runs, teacher) travel through the file and the document."""

import json

import pytest

from visualcnn.engine.layers import ConfigError
from visualcnn.engine.model_io import read_model_file
from visualcnn.engine.project_sections import SECTIONS
from visualcnn.resources import resource_dir


def _seed_data() -> dict:
    return json.loads((resource_dir() / "presets" / "seed_cnn.json").read_text())


def test_a_file_without_sections_reads_as_before():
    assert read_model_file(json.dumps(_seed_data())).sections == {}


def test_a_section_of_the_wrong_type_is_named():
    data = _seed_data()
    data["runs"] = {"not": "a list"}
    with pytest.raises(ConfigError, match='"runs" must be a list'):
        read_model_file(json.dumps(data))


def test_sections_round_trip_through_the_document(qtbot):
    from visualcnn.gui.document import PipelineDocument

    data = _seed_data()
    data["teacher"] = {}
    document = PipelineDocument()
    seen = []
    document.section_changed.connect(seen.append)
    document.load_model_file(read_model_file(json.dumps(data)))
    assert document.section("teacher") == {} and "teacher" in seen
    document.set_section("runs", [])
    assert json.loads(document.to_json())["runs"] == []
    document.set_section("runs", None)
    assert "runs" not in json.loads(document.to_json())
    with pytest.raises(KeyError):
        document.set_section("nonsense", {})
    assert set(SECTIONS) == {"dataset", "resume", "runs", "teacher"}
