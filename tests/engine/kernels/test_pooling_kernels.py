"""Max / average pooling kernels against plain-numpy references."""

import numpy as np
import pytest

import kernel_reference as ref
from visualcnn.engine import kernels as K

# (N, H, W, C, PH, PW, sh, sw, padding)
POOL_CASES = [
    (1, 26, 26, 3, 2, 2, 2, 2, "valid"),
    (3, 11, 11, 1, 2, 2, 2, 2, "valid"),    # odd size: last row/col dropped
    (3, 7, 5, 3, 2, 2, 2, 2, "same"),       # odd: pad at the end only
    (2, 7, 7, 3, 3, 3, 2, 2, "same"),
    (2, 6, 7, 2, 3, 2, 1, 1, "same"),       # overlapping windows, non-square
    (1, 8, 8, 3, 3, 3, 2, 1, "valid"),
    (2, 5, 5, 2, 4, 4, 3, 3, "same"),       # window mostly padding at the edge
]


def geometry(case):
    N, H, W, C, PH, PW, sh, sw, padding = case
    if padding == "valid":
        oh, pt, pb = (H - PH) // sh + 1, 0, 0
        ow, pl, pr = (W - PW) // sw + 1, 0, 0
    else:
        oh, pt, pb = K.same_padding(H, PH, sh, 1)
        ow, pl, pr = K.same_padding(W, PW, sw, 1)
    return (oh, ow), (pt, pb, pl, pr)


@pytest.mark.parametrize("case", POOL_CASES)
def test_maxpool(case):
    rng = np.random.default_rng(0)
    N, H, W, C, PH, PW, sh, sw, _ = case
    (oh, ow), pads = geometry(case)
    # all negative: a -inf/zero padding bug would show up as a wrong maximum
    x = -np.abs(rng.standard_normal((N, H, W, C))).astype(np.float32) - 0.5
    expect = ref.maxpool2d(x, (PH, PW), (sh, sw), pads, (oh, ow))
    for fn in (K.maxpool2d_forward, K.maxpool2d_forward_serial):
        out = np.full((N, oh, ow, C), np.nan, np.float32)
        arg = np.full((N, oh, ow, C), -7, np.int32)
        fn(x, out, arg, PH, PW, sh, sw, pads[0], pads[2])
        np.testing.assert_array_equal(out, expect.astype(np.float32))
        assert arg.min() >= 0
    dy = rng.standard_normal((N, oh, ow, C)).astype(np.float32)
    dx = np.full_like(x, np.nan)
    K.maxpool2d_backward(dy, arg, dx)
    np.testing.assert_allclose(dx, ref.maxpool2d_grad(x, dy, (PH, PW), (sh, sw), pads),
                               rtol=1e-6, atol=1e-6)


def test_maxpool_ties_go_to_first_and_central_differences():
    x = np.zeros((1, 4, 4, 1), np.float32)
    out = np.empty((1, 2, 2, 1), np.float32)
    arg = np.empty((1, 2, 2, 1), np.int32)
    K.maxpool2d_forward(x, out, arg, 2, 2, 2, 2, 0, 0)
    np.testing.assert_array_equal(arg.ravel(), [0, 2, 8, 10])
    # central differences on distinct values (piecewise linear, eps below the gaps)
    rng = np.random.default_rng(1)
    x = rng.permutation(49).reshape(1, 7, 7, 1).astype(np.float32)
    oh, pt, pb = K.same_padding(7, 3, 2, 1)
    out = np.empty((1, oh, oh, 1), np.float32)
    arg = np.empty(out.shape, np.int32)
    K.maxpool2d_forward(x, out, arg, 3, 3, 2, 2, pt, pt)
    dy = rng.standard_normal(out.shape).astype(np.float32)
    dx = np.empty_like(x)
    K.maxpool2d_backward(dy, arg, dx)
    pads = (pt, pb, pt, pb)
    for idx in np.ndindex(x.shape):
        xp, xm = x.astype(np.float64), x.astype(np.float64)
        xp[idx] += 1e-3
        xm[idx] -= 1e-3
        fd = ((ref.maxpool2d(xp, (3, 3), (2, 2), pads, (oh, oh))
               - ref.maxpool2d(xm, (3, 3), (2, 2), pads, (oh, oh))) * dy).sum() / 2e-3
        assert dx[idx] == pytest.approx(fd, abs=1e-4)


@pytest.mark.parametrize("case", POOL_CASES)
def test_avgpool_counts_real_cells_only(case):
    rng = np.random.default_rng(2)
    N, H, W, C, PH, PW, sh, sw, _ = case
    (oh, ow), pads = geometry(case)
    x = rng.standard_normal((N, H, W, C)).astype(np.float32) + 3.0
    expect = ref.avgpool2d(x, (PH, PW), (sh, sw), pads, (oh, ow))
    for fn in (K.avgpool2d_forward, K.avgpool2d_forward_serial):
        out = np.full((N, oh, ow, C), np.nan, np.float32)
        fn(x, out, PH, PW, sh, sw, pads[0], pads[2])
        np.testing.assert_allclose(out, expect, rtol=1e-5, atol=1e-6)
    # backward: exact gradient of the (linear) reference via central differences,
    # vectorised as the adjoint identity <avg(x), dy> = <x, avg_backward(dy)> plus
    # a few explicit coordinates
    dy = rng.standard_normal((N, oh, ow, C)).astype(np.float32)
    dx = np.full_like(x, np.nan)
    K.avgpool2d_backward(dy, dx, PH, PW, sh, sw, pads[0], pads[2])
    assert (expect * dy).sum() == pytest.approx((x.astype(np.float64) * dx).sum(), rel=1e-5)
    for idx in [tuple(rng.integers(0, s) for s in x.shape) for _ in range(8)]:
        xp, xm = x.astype(np.float64), x.astype(np.float64)
        xp[idx] += 1e-3
        xm[idx] -= 1e-3
        fd = ((ref.avgpool2d(xp, (PH, PW), (sh, sw), pads, (oh, ow))
               - ref.avgpool2d(xm, (PH, PW), (sh, sw), pads, (oh, ow))) * dy).sum() / 2e-3
        assert dx[idx] == pytest.approx(fd, abs=1e-4)


@pytest.mark.parametrize("case", POOL_CASES)
def test_maxpool_backward_with_relu_mask_equals_pool_then_relu_backward(case):
    """maxpool2d_backward(..., relu_out=y) == relu backward of the unmasked pool gradient."""
    rng = np.random.default_rng(7)
    N, H, W, C, PH, PW, sh, sw, _ = case
    (oh, ow), pads = geometry(case)
    z = rng.standard_normal((N, H, W, C)).astype(np.float32)
    z[:, ::2] = -np.abs(z[:, ::2])  # whole windows of non-positive values occur
    a = np.maximum(z, 0.0)         # the relu'd conv output feeding the pool
    y = np.empty((N, oh, ow, C), np.float32)
    arg = np.empty(y.shape, np.int32)
    K.maxpool2d_forward(a, y, arg, PH, PW, sh, sw, pads[0], pads[2])
    dy = rng.standard_normal(y.shape).astype(np.float32)
    expect = ref.maxpool2d_grad(a, dy, (PH, PW), (sh, sw), pads) * (z > 0)
    assert (y == 0).any() and (y > 0).any()
    dx = np.full_like(z, np.nan)
    K.maxpool2d_backward(dy, arg, dx, relu_out=y)
    np.testing.assert_allclose(dx, expect, rtol=1e-6, atol=1e-6)


def _first_max_reference(x, PH, PW, sh, sw, pt, pl, oh, ow):
    """The rule, one output at a time: taps in (ky, kx) order over the real cells; the first
    is taken, a later one only when strictly larger (so ties go to the first, a NaN first
    cell stays, a later NaN never wins)."""
    N, H, W, C = x.shape
    out = np.empty((N, oh, ow, C), np.float32)
    arg = np.empty((N, oh, ow, C), np.int32)
    for n, oy, ox, c in np.ndindex(N, oh, ow, C):
        best, where = None, -1
        for ky in range(PH):
            for kx in range(PW):
                iy, ix = oy * sh - pt + ky, ox * sw - pl + kx
                if 0 <= iy < H and 0 <= ix < W:
                    v = x[n, iy, ix, c]
                    if best is None or v > best:
                        best, where = v, (iy * W + ix) * C + c
        out[n, oy, ox, c], arg[n, oy, ox, c] = best, where
    return out, arg


@pytest.mark.parametrize("case", [(2, 9, 9, 5, 3, 3, 1, 1, "same"), (1, 7, 10, 17, 2, 3, 2, 1, "same"),
                                  (2, 8, 8, 3, 3, 3, 1, 1, "valid"), (1, 6, 6, 16, 5, 5, 1, 1, "same")])
def test_unit_stride_windows_keep_the_first_maximum_with_ties_nan_and_infinities(case):
    """Unit column strides compare a whole run of (outputs x channels) per window tap; the
    result and the winners must be the per-output rule's, value for value."""
    N, H, W, C, PH, PW, sh, sw, _ = case
    (oh, ow), pads = geometry(case)
    rng = np.random.default_rng(3)
    x = rng.integers(-2, 2, (N, H, W, C)).astype(np.float32)  # many ties
    x[rng.random(x.shape) < 0.05] = np.nan
    x[rng.random(x.shape) < 0.05] = -np.inf
    expect, expect_arg = _first_max_reference(x, PH, PW, sh, sw, pads[0], pads[2], oh, ow)
    wider = np.zeros((N, H, W, C + 3), np.float32)
    wider[..., :C] = x
    for fn in (K.maxpool2d_forward, K.maxpool2d_forward_serial):
        for source in (x, wider[..., :C]):  # a view with gaps too: the driver copies it
            out = np.full((N, oh, ow, C), 7.0, np.float32)
            arg = np.full((N, oh, ow, C), -7, np.int32)
            fn(source, out, arg, PH, PW, sh, sw, pads[0], pads[2])
            np.testing.assert_array_equal(out, expect)
            np.testing.assert_array_equal(arg, expect_arg)
