"""Merge layers: configs, shapes (as Keras 3), forward against numpy, gradients against
central differences (float64 references of the float32 layers)."""

import numpy as np
import pytest

from visualcnn.engine import layers as L
from visualcnn.engine.layers import LAYER_CLASSES, ConfigError
from visualcnn.engine.layers.base import Context

MERGES = ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate"]

REFERENCE = {
    "Add": lambda xs: sum(xs[1:], xs[0]),
    "Subtract": lambda xs: xs[0] - xs[1],
    "Multiply": lambda xs: np.prod(np.broadcast_arrays(*xs), axis=0),
    "Average": lambda xs: sum(xs[1:], xs[0]) / len(xs),
    "Maximum": lambda xs: np.max(np.broadcast_arrays(*xs), axis=0),
    "Minimum": lambda xs: np.min(np.broadcast_arrays(*xs), axis=0),
    "Concatenate": lambda xs: np.concatenate(xs, axis=-1),
}


def run(layer, shapes, xs, dy=None):
    layer.build(tuple((None, *s[1:]) for s in shapes), np.random.default_rng(0))
    ctx = Context()
    y = layer.forward([x.astype(np.float32) for x in xs], ctx, training=True)
    if dy is None:
        return y.copy(), None
    grads = layer.backward(dy.astype(np.float32), ctx)
    return y.copy(), [g.copy() for g in grads]


@pytest.mark.parametrize("name", MERGES)
def test_registered_with_keras_config(name):
    cls = LAYER_CLASSES[name]
    layer = cls(name="m")
    assert layer.merge and layer.family == "merge"
    config = layer.get_config()
    assert config == ({"name": "m", "trainable": True, "axis": -1} if name == "Concatenate"
                      else {"name": "m", "trainable": True})
    assert cls.from_config(config).get_config() == config


def test_concatenate_axis_config_and_batch_axis_refused():
    assert L.Concatenate(axis=1).get_config(compact=True) == {"axis": 1}
    assert L.Concatenate(3).config["axis"] == 3
    with pytest.raises(ConfigError, match="axis 0 is the batch axis"):
        L.Concatenate(axis=0)
    with pytest.raises(ConfigError, match="integer axis"):
        L.Concatenate(axis="channels")


@pytest.mark.parametrize("name", ["Add", "Multiply", "Average", "Maximum", "Minimum"])
@pytest.mark.parametrize("shapes", [
    [(2, 5, 5, 3), (2, 5, 5, 3)],
    [(2, 5, 5, 3), (2, 5, 5, 3), (2, 5, 5, 3)],
    [(3, 4), (3, 4), (3, 4), (3, 4)],
    [(2, 4, 4, 3), (2, 1, 1, 3)],  # broadcasting
    [(2, 4, 4, 3), (2, 3)],  # a lower rank expands after the batch axis
])
def test_forward_and_gradients(name, shapes):
    check(name, shapes)


def test_subtract_forward_and_gradients():
    check("Subtract", [(2, 5, 5, 3), (2, 5, 5, 3)])
    check("Subtract", [(2, 5, 5, 3), (2, 5, 1, 3)])


@pytest.mark.parametrize("shapes", [[(2, 4, 4, 3), (2, 4, 4, 5)], [(2, 3, 3, 1), (2, 3, 3, 2), (2, 3, 3, 4)],
                                    [(3, 2), (3, 7)]])
def test_concatenate_forward_and_gradients(shapes):
    check("Concatenate", shapes)


def test_concatenate_along_another_axis():
    rng = np.random.default_rng(1)
    xs = [rng.normal(size=(2, 3, 4, 2)), rng.normal(size=(2, 5, 4, 2))]
    layer = L.Concatenate(axis=1)
    dy = rng.normal(size=(2, 8, 4, 2))
    y, grads = run(layer, [x.shape for x in xs], xs, dy)
    np.testing.assert_allclose(y, np.concatenate(xs, axis=1), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(grads[0], dy[:, :3], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(grads[1], dy[:, 3:], rtol=1e-6, atol=1e-6)


def expand(x, rank):
    return x.reshape((x.shape[0],) + (1,) * (rank - x.ndim) + x.shape[1:])


def check(name, shapes):
    rng = np.random.default_rng(sum(len(s) for s in shapes) + len(name))
    # well separated values: max/min never tie, the differences never cross a kink
    xs = [rng.permutation(np.linspace(-2, 2, int(np.prod(s)))).reshape(s) + 0.01 * k for k, s in enumerate(shapes)]
    rank = max(len(s) for s in shapes)
    expanded = [expand(x, rank) for x in xs]
    want = REFERENCE[name](expanded)
    layer = LAYER_CLASSES[name](name="m")
    dy = rng.normal(size=want.shape)
    y, grads = run(layer, shapes, xs, dy)
    assert y.shape == want.shape
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)
    assert layer.infer(tuple((None, *s[1:]) for s in shapes)).output_shape == (None, *want.shape[1:])

    def loss(values):
        return float(np.sum(REFERENCE[name]([expand(v, rank) for v in values]) * dy))

    eps = 1e-4
    for k, x in enumerate(xs):
        numeric = np.zeros_like(x)
        for idx in np.ndindex(x.shape):
            plus = [v.copy() for v in xs]
            minus = [v.copy() for v in xs]
            plus[k][idx] += eps
            minus[k][idx] -= eps
            numeric[idx] = (loss(plus) - loss(minus)) / (2 * eps)
        assert grads[k].shape == x.shape
        np.testing.assert_allclose(grads[k], numeric, rtol=1e-3, atol=1e-3)


def test_maximum_ties_send_the_gradient_to_the_first_input():
    x = np.ones((1, 4), np.float32)
    layer = L.Maximum()
    _, grads = run(layer, [x.shape, x.shape], [x, x], np.full((1, 4), 2.0))
    np.testing.assert_array_equal(grads[0], np.full((1, 4), 2.0))
    np.testing.assert_array_equal(grads[1], np.zeros((1, 4)))


def test_the_same_input_twice():
    x = np.arange(6, dtype=np.float32).reshape(1, 6)
    y, grads = run(L.Multiply(), [x.shape, x.shape], [x, x], np.ones((1, 6)))
    np.testing.assert_allclose(y, x * x)
    np.testing.assert_allclose(grads[0] + grads[1], 2 * x)


def test_a_merge_never_writes_into_its_inputs_or_dy():
    rng = np.random.default_rng(3)
    for name in MERGES:
        shapes = [(2, 3, 3, 4), (2, 3, 3, 4)]
        xs = [rng.normal(size=s).astype(np.float32) for s in shapes]
        keep = [x.copy() for x in xs]
        layer = LAYER_CLASSES[name]()
        layer.build(tuple((None, *s[1:]) for s in shapes), rng)
        ctx = Context()
        y = layer.forward(xs, ctx, training=True)
        dy = rng.normal(size=y.shape).astype(np.float32)
        dy_keep = dy.copy()
        layer.backward(dy, ctx)
        for x, k in zip(xs, keep):
            np.testing.assert_array_equal(x, k)
        np.testing.assert_array_equal(dy, dy_keep)


def test_need_dx_false_returns_none_per_input():
    layer = L.Add()
    x = np.ones((1, 3), np.float32)
    layer.build(((None, 3), (None, 3)), np.random.default_rng(0))
    ctx = Context()
    layer.forward([x, x], ctx)
    assert layer.backward(np.ones((1, 3), np.float32), ctx, need_dx=False) == [None, None]


# shapes checked against Keras 3.12 (torch backend) by hand: (input shapes, output shape)
KERAS_SHAPES = [
    ("Add", [(None, 13, 13, 32), (None, 13, 13, 32)], (None, 13, 13, 32)),
    ("Multiply", [(None, 6, 6, 8), (None, 1, 1, 8)], (None, 6, 6, 8)),
    ("Add", [(None, 6, 6, 8), (None, 8)], (None, 6, 6, 8)),
    ("Concatenate", [(None, 28, 28, 32), (None, 28, 28, 64)], (None, 28, 28, 96)),
    ("Add", [(None, 3)], (None, 3)),
]


@pytest.mark.parametrize("name,ins,out", KERAS_SHAPES)
def test_shapes_as_keras(name, ins, out):
    assert LAYER_CLASSES[name]().compute_output_shape(ins) == out


def test_shapes_against_live_keras():
    keras = pytest.importorskip("keras")
    for name, ins, out in KERAS_SHAPES:
        layer = getattr(keras.layers, name)()
        assert tuple(layer.compute_output_shape([tuple(s) for s in ins])) == out
    assert tuple(keras.layers.Concatenate(axis=1).compute_output_shape([(None, 3), (None, 4)])) == \
        L.Concatenate(axis=1).compute_output_shape([(None, 3), (None, 4)])


@pytest.mark.parametrize("shapes", [[(2, 4, 4, 3), (2, 4, 4, 3)], [(2, 4, 4, 3), (2, 1, 1, 3)]])
def test_add_applies_a_fused_relu_and_its_derivative(shapes):
    rng = np.random.default_rng(5)
    xs = [rng.normal(size=s).astype(np.float32) for s in shapes]
    layer = L.Add()
    layer.build(tuple((None, *s[1:]) for s in shapes), rng)
    ctx = Context()
    ctx.fuse_relu = True
    y = layer.forward(xs, ctx, training=True)
    total = xs[0] + xs[1]
    np.testing.assert_allclose(y, np.maximum(total, 0), atol=1e-6)
    dy = rng.normal(size=y.shape).astype(np.float32)
    grads = layer.backward(dy, ctx)
    np.testing.assert_allclose(grads[0], dy * (total > 0), atol=1e-6)
    np.testing.assert_allclose(grads[1], (dy * (total > 0)).sum(axis=(1, 2), keepdims=True)
                               if shapes[1][1] == 1 else dy * (total > 0), atol=1e-5)


def test_serial_twins_give_the_same_results():
    from visualcnn.engine import parallel

    rng = np.random.default_rng(6)
    shapes = [(3, 5, 5, 4), (3, 5, 5, 4), (3, 5, 5, 4)]
    for name in ["Add", "Average", "Multiply", "Maximum", "Minimum", "Concatenate"]:
        xs = [rng.normal(size=s).astype(np.float32) for s in shapes]
        dy = None
        results = []
        for serial in (False, True):
            layer = LAYER_CLASSES[name]()
            layer.build(tuple((None, *s[1:]) for s in shapes), rng)
            ctx = Context()
            if serial:
                with parallel.serial_inference():
                    y = layer.forward(xs, ctx, training=False)
                    dy = rng.normal(size=y.shape).astype(np.float32) if dy is None else dy
                    grads = layer.backward(dy, ctx)
            else:
                y = layer.forward(xs, ctx, training=False)
                dy = rng.normal(size=y.shape).astype(np.float32)
                grads = layer.backward(dy, ctx)
            results.append((y.copy(), [g.copy() for g in grads]))
        np.testing.assert_array_equal(results[0][0], results[1][0])
        for a, b in zip(results[0][1], results[1][1]):
            np.testing.assert_array_equal(a, b)


def test_input_count_limits():
    with pytest.raises(ConfigError, match=r"^Maximum: takes at most 255 inputs, received 256; connect at most 255"):
        L.Maximum().infer(((None, 2),) * 256)
    with pytest.raises(ConfigError, match=r"^Add: takes at least 1 input, received 0"):
        L.Add().infer(())
    assert L.Add().infer(((None, 2),) * 300).output_shape == (None, 2)


def test_concatenate_derivation_names_the_axis():
    lines = L.Concatenate(axis=1).infer(((None, 13, 13, 8), (None, 5, 13, 8))).derivation
    assert lines[0] == "Concatenate: height 13 + 5 = 18"
    assert L.Concatenate(axis=2).infer(((None, 4, 3, 8), (None, 4, 3, 8))).derivation[0] == \
        "Concatenate: width 3 + 3 = 6"
    assert L.Concatenate().infer(((None, 3), (None, 4))).derivation[0] == "Concatenate: features 3 + 4 = 7"
