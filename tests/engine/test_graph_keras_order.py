"""Model(inputs, outputs).layers comes in Keras's order (so get_weights() lines up with a
Keras model's), checked against live Keras 3 on random graphs of Dense and Add layers.
Keras is not a dependency: skipped without it (run with /tmp/venvC/bin/python)."""

import os
import random

import pytest

from visualcnn.engine import Input, Model, layers as L


def random_spec(seed):
    rnd = random.Random(seed)
    spec = []
    for n in range(rnd.randint(3, 10)):
        if n >= 2 and rnd.random() < 0.4:
            spec.append(("add", tuple(rnd.sample(range(-1, n), 2))))
        else:
            spec.append(("dense", (rnd.randint(-1, n - 1),)))
    return spec


def make(spec, layers, input_fn):
    inputs = input_fn((8,))
    outs = []
    for n, (kind, ins) in enumerate(spec):
        src = [inputs if j == -1 else outs[j] for j in ins]
        outs.append(layers.Add(name=f"l{n}")(src) if kind == "add" else layers.Dense(8, name=f"l{n}")(src[0]))
    consumed = {j for _, ins in spec for j in ins}
    leaves = [outs[n] for n in range(len(outs)) if n not in consumed]
    return inputs, leaves[0] if len(leaves) == 1 else layers.Add(name="final")(leaves)


def test_layer_order_matches_keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    for seed in range(25):
        spec = random_spec(seed)
        theirs = keras.Model(*make(spec, keras.layers, keras.Input))
        ours = Model(*make(spec, L, Input))
        assert [layer.name for layer in ours.layers] == \
            [layer.name for layer in theirs.layers if type(layer).__name__ != "InputLayer"], seed


def test_layer_order_is_topological_without_keras():
    for seed in range(25):
        model = Model(*make(random_spec(seed), L, Input))
        assert all(j < i for i, ins in enumerate(model.inbound) for j in ins)
        assert model.analyse().ok
