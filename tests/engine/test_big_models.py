"""Huge and deep model files stay linear: naming, analysis and the summary table.

No timing assertions (the machine is shared): the work is counted instead.
"""

import json

from visualcnn.engine import Sequential, layers
from visualcnn.engine.model import unique_name
from visualcnn.engine.model_io import read_model_file


class CountingSet(set):
    def __init__(self, *args):
        super().__init__(*args)
        self.lookups = 0

    def __contains__(self, item):
        self.lookups += 1
        return super().__contains__(item)


def test_unique_name_with_counters_is_linear_and_gives_keras_names():
    n = 3000
    taken, counters, names = CountingSet(), {}, []
    for _ in range(n):
        name = unique_name("dense", taken, counters)
        taken.add(name)
        names.append(name)
    assert names[:3] == ["dense", "dense_1", "dense_2"] and names[-1] == f"dense_{n - 1}"
    assert taken.lookups <= 3 * n  # without counters: about n * n / 2


def test_unique_name_skips_names_already_used():
    assert unique_name("dense", {"dense", "dense_1", "dense_3"}) == "dense_2"
    counters = {}
    taken = {"dense", "dense_2"}
    first = unique_name("dense", taken, counters)
    taken.add(first)
    second = unique_name("dense", taken, counters)
    assert (first, second) == ("dense_1", "dense_3")


class CountedDense(layers.Dense):
    name_reads = 0

    @property
    def name(self):
        CountedDense.name_reads += 1
        return self._name

    @name.setter
    def name(self, value):
        self._name = value


def test_adding_layers_reads_each_name_a_bounded_number_of_times():
    n = 2000
    CountedDense.name_reads = 0
    model = Sequential([layers.Input(shape=(4,)), *(CountedDense(2) for _ in range(n))])
    assert model.layers[-1].name == f"dense_{n - 1}"
    assert CountedDense.name_reads < 10 * n  # rebuilding the name set on every add: n * n / 2


def test_names_stay_unique_after_the_list_changes_elsewhere():
    model = Sequential([layers.Input(shape=(4,)), layers.Dense(2), layers.Dense(2)])
    model.layers.pop()
    model.add(layers.Dense(2))
    model.add(layers.Dense(2))
    assert [layer.name for layer in model.layers] == ["dense", "dense_1", "dense_2"]


def test_a_40000_layer_file_loads_and_summarises():
    entries = [{"class_name": "Dense", "config": {"units": 2}} for _ in range(40_000)]
    text = json.dumps({"format": "visualcnn.model", "version": 1, "name": "deep", "input_shape": [4],
                       "layers": entries})
    model = read_model_file(text).model
    report = model.checked_report()
    assert len(report.rows) == 40_000 and model.layers[-1].name == "dense_39999"
    assert report.total_params == 4 * 2 + 2 + 39_999 * (2 * 2 + 2)
