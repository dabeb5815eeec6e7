"""The layer contract graphs rely on, checked for every registered layer class: forward
never writes into its input and backward never writes into the dy it is given (in a
graph both are shared with other layers: a fork's consumers read one tensor, and the
gradient an Add hands back is the same array for each of its inputs)."""

import numpy as np
import pytest

from visualcnn.engine.layers import LAYER_CLASSES
from visualcnn.engine.layers.base import Context

IMAGE = (2, 8, 8, 4)  # 4 channels: GroupNormalization(groups=4) divides it


def _cases():
    for name, cls in LAYER_CLASSES.items():
        yield pytest.param(name, id=name)


@pytest.mark.parametrize("name", _cases())
@pytest.mark.parametrize("training", [True, False])
def test_forward_and_backward_leave_their_inputs_alone(name, training):
    cls = LAYER_CLASSES[name]
    layer = cls.from_config(dict(cls.starter_config))
    rng = np.random.default_rng(0)
    shapes = [IMAGE, IMAGE] if layer.merge else [IMAGE]
    batch_shapes = tuple((None, *s[1:]) for s in shapes)
    layer.build(batch_shapes if layer.merge else batch_shapes[0], rng)
    xs = [rng.normal(size=s).astype(np.float32) for s in shapes]
    keep = [x.copy() for x in xs]
    ctx = Context()
    y = layer.forward(xs if layer.merge else xs[0], ctx, training)
    for x, k in zip(xs, keep):
        np.testing.assert_array_equal(x, k, err_msg=f"{name}.forward wrote into its input")
    dy = rng.normal(size=y.shape).astype(np.float32)
    dy_keep = dy.copy()
    layer.backward(dy, ctx, need_dx=True)
    np.testing.assert_array_equal(dy, dy_keep, err_msg=f"{name}.backward wrote into its dy")
    for x, k in zip(xs, keep):
        np.testing.assert_array_equal(x, k, err_msg=f"{name}.backward wrote into its input")
