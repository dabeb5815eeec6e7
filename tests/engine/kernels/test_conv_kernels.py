"""Conv2D, DepthwiseConv2D and Conv2DTranspose kernels against plain-numpy references."""

import numpy as np
import pytest

import kernel_reference as ref
from visualcnn.engine import kernels as K
from visualcnn.engine.kernels.conv import few_channel, im2col_gemm, planner

# (N, H, W, C, CO, KH, KW, sh, sw, dh, dw, padding)
CONV_CASES = [
    (1, 7, 7, 1, 4, 3, 3, 1, 1, 1, 1, "valid"),
    (3, 8, 7, 3, 5, 3, 2, 2, 2, 1, 1, "same"),     # stride 2, non-square, odd pad
    (3, 9, 9, 3, 4, 3, 3, 1, 1, 2, 2, "same"),     # dilation 2
    (2, 10, 9, 3, 6, 2, 3, 2, 1, 1, 1, "valid"),
    (1, 6, 6, 1, 3, 4, 4, 2, 2, 1, 1, "same"),     # even kernel: odd total padding
    (3, 13, 13, 32, 8, 3, 3, 1, 1, 1, 1, "valid"),  # K=288: GEMM path
    (2, 9, 8, 8, 5, 3, 3, 2, 2, 1, 1, "same"),     # K=72 GEMM with stride and odd pad
    (2, 11, 11, 4, 3, 3, 3, 1, 2, 2, 1, "same"),   # K=36 GEMM, mixed stride/dilation
    (1, 5, 5, 3, 2, 1, 1, 1, 1, 1, 1, "valid"),    # 1x1 kernel
    (2, 9, 10, 3, 20, 3, 3, 2, 2, 1, 1, "same"),   # RGB first conv, stride 2, odd pad
    (2, 11, 10, 4, 17, 3, 3, 1, 1, 2, 2, "same"),  # C = 4, dilation, CO % 16 != 0
    (2, 9, 9, 2, 8, 3, 3, 1, 2, 1, 1, "valid"),    # C = 2, column stride 2
    (2, 10, 9, 1, 6, 5, 5, 1, 1, 1, 1, "same"),    # LeNet-5 conv1 shape
    (2, 9, 8, 16, 8, 3, 3, 1, 1, 1, 1, "same"),    # Winograd: odd output, partial tiles
    (2, 13, 12, 16, 9, 3, 3, 1, 1, 2, 2, "same"),  # Winograd with dilation 2
    (2, 14, 13, 17, 8, 3, 3, 1, 1, 3, 2, "valid"), # Winograd, dilations 3 / 2, valid
]
IDS = [f"n{c[0]}_{c[1]}x{c[2]}x{c[3]}->{c[4]}_k{c[5]}x{c[6]}_s{c[7]}{c[8]}_d{c[9]}{c[10]}_{c[11]}"
       for c in CONV_CASES]


def geometry(case):
    N, H, W, C, CO, KH, KW, sh, sw, dh, dw, padding = case
    oh, pt, pb = ref.pads_for(H, KH, sh, dh, padding)
    ow, pl, pr = ref.pads_for(W, KW, sw, dw, padding)
    return (oh, ow), (pt, pb, pl, pr)


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def tol(k):
    return dict(rtol=1e-4, atol=2e-5 * max(1.0, np.sqrt(k)))


def strategies(case):
    """Every strategy that can run this conv: the planner's choice and each forced one."""
    N, H, W, C, CO, KH, KW, sh, sw = case[:9]
    names = [None, "direct", "im2col_matmul"]
    if K.blas.available():
        names.append("im2col_sgemm")
    if (KH, KW) == (3, 3) and C <= 4:
        names.append("few_channel_3x3")
    if C == 1 and (sh, sw) == (1, 1) and (KH, KW) != (3, 3):
        names.append("single_channel_plane")
    if (KH, KW) == (3, 3) and (sh, sw) == (1, 1) and K.blas.available():
        names.append("winograd")  # forced below its channel threshold too: the maths holds
        if case[9:11] == (1, 1):
            names.append("winograd4")
    return names


def plan_for(case, pads, force):
    N, H, W, C, CO, KH, KW, sh, sw, dh, dw, _ = case
    return K.plan_conv((KH, KW, C, CO), (sh, sw), (dh, dw), (pads[0], pads[2]), force=force)


def test_planner_picks_the_specialised_strategies():
    assert K.plan_conv((3, 3, 1, 32)).forward_strategy.name == "few_channel_3x3"
    assert K.plan_conv((3, 3, 3, 32), (2, 1)).kernel_strategy.name == "few_channel_3x3"
    strided = K.plan_conv((3, 3, 3, 32), (2, 2))  # column stride: weight gradient by im2col
    assert strided.forward_strategy.name == "few_channel_3x3"
    assert strided.kernel_strategy.name.startswith("im2col")
    assert K.plan_conv((5, 5, 1, 6), pad=(2, 2)).forward_strategy.name == "single_channel_plane"
    assert K.plan_conv((5, 5, 1, 6), (2, 2)).forward_strategy.name != "single_channel_plane"
    gemm = "im2col_sgemm" if K.blas.available() else "im2col_matmul"
    wino = "winograd" if K.blas.available() else gemm
    assert K.plan_conv((3, 3, 32, 64)).forward_strategy.name == wino
    assert K.plan_conv((3, 3, 32, 64), dilation=(2, 2)).kernel_strategy.name == wino
    assert K.plan_conv((3, 3, 32, 64), (2, 2)).forward_strategy.name == gemm
    assert K.plan_conv((3, 3, 8, 64)).forward_strategy.name == gemm
    assert K.plan_conv((5, 5, 32, 64)).forward_strategy.name == gemm
    assert K.plan_conv((3, 3, 5, 64)).forward_strategy.name == gemm
    assert K.plan_conv((3, 3, 1, 32)).input_strategy.name == gemm  # the only one with an input gradient
    if K.blas.available():  # with the layer's sizes: 4x4 tiles where they fill the map
        same28 = K.plan_conv((3, 3, 32, 32), pad=(1, 1), input_hw=(28, 28), output_hw=(28, 28))
        assert (same28.forward_strategy.name, same28.input_strategy.name, same28.kernel_strategy.name) == (
            "winograd4", "winograd4", "winograd4")
        cifar = K.plan_conv((3, 3, 32, 64), input_hw=(15, 15), output_hw=(13, 13))
        assert (cifar.forward_strategy.name, cifar.input_strategy.name, cifar.kernel_strategy.name) == (
            "winograd4", "winograd4", "winograd")  # 13x13 in 4x4 tiles: 1.36x, too little for a gradient
        seed = K.plan_conv((3, 3, 32, 64), input_hw=(13, 13), output_hw=(11, 11))  # 9 tiles x 2,048: too little work
        assert (seed.forward_strategy.name, seed.input_strategy.name, seed.kernel_strategy.name) == ("winograd",) * 3
        small = K.plan_conv((3, 3, 64, 128), input_hw=(7, 7), output_hw=(5, 5))  # 4x4 tiles 39 % full
        assert (small.forward_strategy.name, small.input_strategy.name, small.kernel_strategy.name) == (
            "winograd", "winograd4", "winograd")
        dilated = K.plan_conv((3, 3, 32, 64), dilation=(2, 2), input_hw=(28, 28), output_hw=(24, 24))
        assert dilated.forward_strategy.name == dilated.input_strategy.name == "winograd"
        assert K.plan_conv((3, 3, 32, 64)).forward_strategy.name == "winograd"  # sizes unknown
        assert same28.single_image_large_strategy.name == "winograd"  # one image: F(2x2)'s cheaper transform
        assert K.plan_conv((3, 3, 32, 64)).single_image_large_strategy is None
    plan = K.plan_conv((3, 3, 3, 32))
    region, region_serial = few_channel.FORWARD
    assert plan.kernels(training=False, serial=True) == [few_channel._conv_row, few_channel._conv_row_pair,
                                                        few_channel._conv_row_pair_more,
                                                        few_channel._fwd_image, region_serial]
    training = plan.kernels(training=True, need_dx=False)
    assert region in training and region_serial not in training
    assert all(hasattr(k, "compile") for k in plan.kernels())  # numba dispatchers


@pytest.mark.skipif(K.plan_conv((3, 3, 32, 64)).forward_strategy.name != "winograd",
                    reason="no cblas_sgemm: Winograd is not planned")
@pytest.mark.parametrize("hw,pad,expect_strategy", [((13, 13), (0, 0), "im2col_sgemm"),
                                                    ((16, 16), (1, 1), "im2col_sgemm"),
                                                    ((20, 20), (1, 1), "winograd")])
@pytest.mark.parametrize("serial", [False, True])
def test_single_image_small_output_takes_im2col_and_matches(monkeypatch, hw, pad, expect_strategy, serial):
    rng = np.random.default_rng(3)
    x, w, b = rand(rng, 1, *hw, 32), rand(rng, 3, 3, 32, 64), rand(rng, 64)
    plan = K.plan_conv(w.shape, pad=pad)
    assert plan.single_image_strategy.name == "im2col_sgemm"
    assert K.conv2d_forward_gemm_serial in plan.kernels(training=False, serial=True)
    used = []
    for s in (plan.forward_strategy, plan.single_image_strategy):
        monkeypatch.setattr(s, "forward", (lambda f, name: lambda *a: (used.append(name), f(*a)))(s.forward, s.name))
    oh, ow = hw[0] - 2 + 2 * pad[0], hw[1] - 2 + 2 * pad[1]
    expect = np.maximum(ref.conv2d(x, w, b, (1, 1), (1, 1), (pad[0], pad[0], pad[1], pad[1]), (oh, ow)), 0.0)
    out = np.full((1, oh, ow, 64), np.nan, np.float32)
    plan.forward(x, w, b, out, relu=True, ws=K.Workspace(), serial=serial)
    assert used == [expect_strategy]
    np.testing.assert_allclose(out, expect, **tol(9 * 32))
    two = np.concatenate([x, x])  # two images: Winograd as planned
    out2 = np.full((2, oh, ow, 64), np.nan, np.float32)
    used.clear()
    plan.forward(two, w, b, out2, relu=True, ws=K.Workspace(), serial=serial)
    assert used == ["winograd"]
    np.testing.assert_allclose(out2[1], out[0], **tol(9 * 32))


@pytest.mark.skipif(not K.blas.available(), reason="no cblas_sgemm: Winograd is not planned")
@pytest.mark.parametrize("serial", [False, True])
def test_single_big_image_takes_2x2_tiles_where_batches_take_4x4(monkeypatch, serial):
    rng = np.random.default_rng(4)
    x, w, b = rand(rng, 1, 28, 28, 32), rand(rng, 3, 3, 32, 32), rand(rng, 32)
    plan = K.plan_conv(w.shape, pad=(1, 1), input_hw=(28, 28), output_hw=(28, 28))
    used = []
    for s in (plan.forward_strategy, plan.single_image_large_strategy):
        monkeypatch.setattr(s, "forward", (lambda f, name: lambda *a: (used.append(name), f(*a)))(s.forward, s.name))
    expect = np.maximum(ref.conv2d(x, w, b, (1, 1), (1, 1), (1, 1, 1, 1), (28, 28)), 0.0)
    out = np.full((1, 28, 28, 32), np.nan, np.float32)
    plan.forward(x, w, b, out, relu=True, ws=K.Workspace(), serial=serial)
    out3 = np.full((3, 28, 28, 32), np.nan, np.float32)
    plan.forward(np.concatenate([x, x, x]), w, b, out3, relu=True, ws=K.Workspace(), serial=serial)
    assert used == ["winograd", "winograd4"]
    np.testing.assert_allclose(out, expect, **tol(9 * 32))
    np.testing.assert_allclose(out3[2], expect[0], **tol(9 * 32))


# ------------------------------------------------------------------ padding helpers

@pytest.mark.parametrize("in_size,k,s,d", [(28, 3, 1, 1), (28, 3, 2, 1), (5, 2, 2, 1),
                                           (7, 3, 2, 2), (6, 4, 2, 1), (1, 3, 1, 1),
                                           (10, 5, 3, 2)])
def test_same_padding_matches_keras_formula(in_size, k, s, d):
    out, before, after = K.same_padding(in_size, k, s, d)
    assert out == (in_size - 1) // s + 1
    total = max((out - 1) * s + (k - 1) * d + 1 - in_size, 0)
    assert (before, after) == (total // 2, total - total // 2)
    assert after >= before


def test_valid_output_and_errors():
    assert K.valid_output(28, 3) == 26
    assert K.valid_output(13, 3, 1, 1) == 11
    assert K.valid_output(11, 2, 2) == 5
    assert K.valid_output(9, 3, 2, 2) == 3
    with pytest.raises(ValueError, match="larger than the input"):
        K.valid_output(3, 5)


def test_conv_transpose_output_sizes():
    assert K.conv_transpose_output(5, 3, 2, 1, "valid") == (11, 0)
    assert K.conv_transpose_output(5, 1, 3, 1, "valid") == (15, 0)  # max(k', s)
    out, pt = K.conv_transpose_output(5, 3, 2, 1, "same")
    assert out == 10 and pt == K.same_padding(10, 3, 2, 1)[1]


# ------------------------------------------------------------------ conv2d forward

@pytest.mark.parametrize("case", CONV_CASES, ids=IDS)
@pytest.mark.parametrize("relu", [False, True])
def test_conv2d_forward_all_paths(case, relu):
    rng = np.random.default_rng(0)
    N, H, W, C, CO, KH, KW, sh, sw, dh, dw, _ = case
    (oh, ow), pads = geometry(case)
    x, w, b = rand(rng, N, H, W, C), rand(rng, KH, KW, C, CO), rand(rng, CO)
    expect = ref.conv2d(x, w, b, (sh, sw), (dh, dw), pads, (oh, ow))
    if relu:
        expect = np.maximum(expect, 0.0)
    runs = {}
    out = np.full((N, oh, ow, CO), np.nan, np.float32)
    for serial in (False, True):
        for force in strategies(case):
            for ws in (None, K.Workspace()):
                out[:] = np.nan
                plan_for(case, pads, force).forward(x, w, b, out, relu=relu, ws=ws, serial=serial)
                runs[f"{force} serial={serial} ws={ws is not None}"] = out.copy()
        out[:] = np.nan
        K.conv2d_forward(x, w, None, out, (sh, sw), (dh, dw), (pads[0], pads[2]), relu=relu,
                         ws=K.Workspace(), serial=serial)
        no_bias = ref.conv2d(x, w, None, (sh, sw), (dh, dw), pads, (oh, ow))
        np.testing.assert_allclose(out, np.maximum(no_bias, 0) if relu else no_bias,
                                   err_msg="driver without bias", **tol(KH * KW * C))
    for name, got in runs.items():
        np.testing.assert_allclose(got, expect, err_msg=name, **tol(KH * KW * C))


def test_conv2d_forward_without_bias_and_chunked_gemm(monkeypatch):
    rng = np.random.default_rng(1)
    x, w = rand(rng, 5, 9, 9, 8), rand(rng, 3, 3, 8, 6)
    expect = ref.conv2d(x, w, None, (1, 1), (1, 1), (1, 1, 1, 1), (9, 9))
    monkeypatch.setattr(im2col_gemm, "GEMM_CHUNK", 2)  # 5 images -> chunks 2, 2, 1
    out = np.full((5, 9, 9, 6), np.nan, np.float32)
    K.plan_conv(w.shape, pad=(1, 1), force="im2col_matmul").forward(x, w, None, out, ws=K.Workspace())
    np.testing.assert_allclose(out, expect, **tol(72))
    out2 = np.empty_like(out)
    K.conv2d_forward_direct(x, w, K.NO_BIAS, out2, 1, 1, 1, 1, 1, 1, False)
    np.testing.assert_allclose(out2, expect, **tol(72))


# ------------------------------------------------------------------ conv2d backward

@pytest.mark.parametrize("case", CONV_CASES, ids=IDS)
def test_conv2d_backward_matches_exact_gradients(case):
    rng = np.random.default_rng(2)
    N, H, W, C, CO, KH, KW, sh, sw, dh, dw, _ = case
    (oh, ow), pads = geometry(case)
    x, w, dy = rand(rng, N, H, W, C), rand(rng, KH, KW, C, CO), rand(rng, N, oh, ow, CO)
    ex_dx, ex_dw, ex_db = ref.conv2d_grads(x, w, dy, (sh, sw), (dh, dw), pads)
    for force in strategies(case):
        plan = plan_for(case, pads, force)
        for ws in (None, K.Workspace()):
            for _ in range(2):  # a second call reuses (and must fully overwrite) the workspace
                dx = np.full_like(x, np.nan)
                plan.backward_input(dy, w, dx, ws=ws, serial=False)
                np.testing.assert_allclose(dx, ex_dx, err_msg=f"dx {force} ws={ws}", **tol(KH * KW * CO))
                gk = np.full_like(w, np.nan)
                gb = np.full(CO, np.nan, np.float32)
                plan.backward_kernel(x, dy, gk, gb, ws=ws)
                np.testing.assert_allclose(gk, ex_dw, err_msg=f"dw {force} ws={ws}", **tol(N * oh * ow))
                np.testing.assert_allclose(gb, ex_db, err_msg=f"db {force} ws={ws}", **tol(N * oh * ow))
            gk = np.full_like(w, np.nan)
            plan.backward_kernel(x, dy, gk, None, ws=ws)
            np.testing.assert_allclose(gk, ex_dw, err_msg=f"dw no bias {force}", **tol(N * oh * ow))
        dx = np.full_like(x, np.nan)
        plan.backward_input(dy, w, dx, serial=True)
        np.testing.assert_allclose(dx, ex_dx, err_msg=f"dx serial {force}", **tol(KH * KW * CO))


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_weight_gradient_partial_sums_for_any_worker_count(threads):
    """The per-thread partial sums are reduced correctly for 1..3 slots (Workspace.threads)."""
    rng = np.random.default_rng(3)
    for case in [CONV_CASES[0], CONV_CASES[9], CONV_CASES[12], CONV_CASES[5]]:
        N, H, W, C, CO, KH, KW, sh, sw, dh, dw, _ = case
        (oh, ow), pads = geometry(case)
        x, w, dy = rand(rng, N, H, W, C), rand(rng, KH, KW, C, CO), rand(rng, N, oh, ow, CO)
        _, ex_dw, ex_db = ref.conv2d_grads(x, w, dy, (sh, sw), (dh, dw), pads)
        for force in strategies(case):
            gk, gb = np.full_like(w, np.nan), np.full(CO, np.nan, np.float32)
            plan_for(case, pads, force).backward_kernel(x, dy, gk, gb, ws=K.Workspace(threads))
            np.testing.assert_allclose(gk, ex_dw, err_msg=f"{force}", **tol(N * oh * ow))
            np.testing.assert_allclose(gb, ex_db, err_msg=f"{force}", **tol(N * oh * ow))


def test_conv2d_backward_central_differences():
    """Backward kernels vs central differences of the float64 numpy reference."""
    rng = np.random.default_rng(4)
    case = (2, 7, 6, 3, 4, 3, 2, 2, 1, 1, 2, "same")
    N, H, W, C, CO, KH, KW, sh, sw, dh, dw, _ = case
    (oh, ow), pads = geometry(case)
    x, w, dy = rand(rng, N, H, W, C), rand(rng, KH, KW, C, CO), rand(rng, N, oh, ow, CO)

    def loss(xx, ww):  # relu makes it non-linear in both arguments
        y = ref.conv2d(xx, ww, None, (sh, sw), (dh, dw), pads, (oh, ow))
        return float((np.maximum(y, 0) * dy).sum())

    y = ref.conv2d(x, w, None, (sh, sw), (dh, dw), pads, (oh, ow))
    g = (dy * (y > 0)).astype(np.float32)
    dx, gk = np.empty_like(x), np.empty_like(w)
    geo = dict(strides=(sh, sw), dilation=(dh, dw), pad=(pads[0], pads[2]))
    K.conv2d_backward_input(g, w, dx, ws=K.Workspace(), **geo)
    K.conv2d_backward_kernel(x, g, gk, None, **geo)
    eps = 1e-4
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    for idx in [tuple(rng.integers(0, s) for s in x.shape) for _ in range(12)]:
        xp, xm = x64.copy(), x64.copy()
        xp[idx] += eps
        xm[idx] -= eps
        fd = (loss(xp, w64) - loss(xm, w64)) / (2 * eps)
        assert dx[idx] == pytest.approx(fd, rel=1e-3, abs=1e-3)
    for idx in [tuple(rng.integers(0, s) for s in w.shape) for _ in range(12)]:
        wp, wm = w64.copy(), w64.copy()
        wp[idx] += eps
        wm[idx] -= eps
        fd = (loss(x64, wp) - loss(x64, wm)) / (2 * eps)
        assert gk[idx] == pytest.approx(fd, rel=1e-3, abs=1e-3)


def test_im2col_col2im_are_adjoint():
    rng = np.random.default_rng(5)
    x = rand(rng, 2, 8, 7, 3)
    oh, ow = 4, 4  # k3 s2 d1 "same": pads (0,1)/(1,1)
    cols = np.empty((2 * oh * ow, 27), np.float32)
    K.im2col(x, cols, 0, 2, 3, 3, oh, ow, 2, 2, 1, 1, 0, 1)
    r = rand(rng, *cols.shape)
    back = np.empty_like(x)
    K.col2im(r, back, 3, 3, oh, ow, 2, 2, 1, 1, 0, 1)
    assert np.dot(cols.ravel().astype(np.float64), r.ravel()) == pytest.approx(
        np.dot(x.ravel().astype(np.float64), back.ravel()), rel=1e-5)


def test_relu_backward_and_bias_act():
    rng = np.random.default_rng(6)
    y, dy = rand(rng, 5000), rand(rng, 5000)
    dx = np.empty_like(y)
    K.relu_backward(y, dy, dx)
    np.testing.assert_array_equal(dx, np.where(y > 0, dy, 0))
    m, b = rand(rng, 300, 7), rand(rng, 7)
    expect = np.maximum(m + b, 0)
    m2 = m.copy()
    K.bias_act_rows(m, b, True)
    K.bias_act_rows_serial(m2, b, True)
    np.testing.assert_allclose(m, expect)
    np.testing.assert_allclose(m2, expect)


# ------------------------------------------------------------------ depthwise

# (N, H, W, C, DM, KH, KW, sh, sw, dh, dw, padding)
DW_CASES = [
    (1, 7, 7, 1, 1, 3, 3, 1, 1, 1, 1, "valid"),
    (3, 8, 7, 3, 2, 3, 2, 2, 2, 1, 1, "same"),
    (3, 9, 9, 3, 1, 3, 3, 1, 1, 2, 2, "same"),
    (2, 10, 9, 4, 3, 2, 3, 2, 1, 1, 1, "valid"),
]


@pytest.mark.parametrize("case", DW_CASES)
def test_depthwise_forward_and_backward(case):
    rng = np.random.default_rng(7)
    N, H, W, C, DM, KH, KW, sh, sw, dh, dw, padding = case
    oh, pt, pb = ref.pads_for(H, KH, sh, dh, padding)
    ow, pl, pr = ref.pads_for(W, KW, sw, dw, padding)
    pads = (pt, pb, pl, pr)
    x, w, b = rand(rng, N, H, W, C), rand(rng, KH, KW, C, DM), rand(rng, C * DM)
    expect = ref.depthwise_conv2d(x, w, b, (sh, sw), (dh, dw), pads, (oh, ow))
    geo = (sh, sw, dh, dw, pt, pl)
    for fn in (K.depthwise_conv2d_forward, K.depthwise_conv2d_forward_serial):
        for relu in (False, True):
            out = np.full((N, oh, ow, C * DM), np.nan, np.float32)
            fn(x, w, b, out, *geo, relu)
            np.testing.assert_allclose(out, np.maximum(expect, 0) if relu else expect,
                                       **tol(KH * KW))
    dy = rand(rng, N, oh, ow, C * DM)
    # the depthwise conv is a dense conv with a block-diagonal kernel
    ex_dx, ex_dw_dense, ex_db = ref.conv2d_grads(x, ref.depthwise_expand(w), dy,
                                                 (sh, sw), (dh, dw), pads)
    dx = np.full_like(x, np.nan)
    K.depthwise_conv2d_backward_input(dy, w, dx, *geo)
    np.testing.assert_allclose(dx, ex_dx, **tol(KH * KW * DM))
    ex_dw = np.stack([ex_dw_dense[:, :, c, c * DM:(c + 1) * DM] for c in range(C)], axis=2)
    for ws in (None, K.Workspace()):
        gk, gb = np.full_like(w, np.nan), np.full(C * DM, np.nan, np.float32)
        K.depthwise_conv2d_backward_kernel(x, dy, gk, gb, *geo, ws=ws)
        np.testing.assert_allclose(gk, ex_dw, **tol(N * oh * ow))
        np.testing.assert_allclose(gb, ex_db, **tol(N * oh * ow))


# ------------------------------------------------------------------ transpose

# (N, H, W, C_in, F, KH, KW, sh, sw, dh, dw, padding)
T_CASES = [
    (1, 4, 4, 1, 3, 3, 3, 1, 1, 1, 1, "valid"),
    (3, 5, 4, 3, 2, 3, 2, 2, 2, 1, 1, "same"),
    (2, 4, 5, 3, 4, 2, 3, 2, 1, 1, 1, "valid"),
    (3, 5, 5, 2, 3, 3, 3, 1, 1, 2, 2, "same"),
    (2, 3, 3, 2, 2, 1, 1, 3, 3, 1, 1, "valid"),   # stride > kernel: zero rows
    (2, 6, 6, 16, 4, 3, 3, 2, 2, 1, 1, "same"),   # K = 3*3*16... GEMM backward-input path
]


@pytest.mark.parametrize("case", T_CASES)
def test_conv2d_transpose(case):
    rng = np.random.default_rng(8)
    N, H, W, C, F, KH, KW, sh, sw, dh, dw, padding = case
    oh, pt = K.conv_transpose_output(H, KH, sh, dh, padding)
    ow, pl = K.conv_transpose_output(W, KW, sw, dw, padding)
    x, k, b = rand(rng, N, H, W, C), rand(rng, KH, KW, F, C), rand(rng, F)
    expect = ref.conv2d_transpose(x, k, b, (sh, sw), (dh, dw), (pt, pl), (oh, ow))
    geo = dict(strides=(sh, sw), dilation=(dh, dw), pad=(pt, pl))
    for ws, serial in ((None, False), (K.Workspace(), False), (None, True), (K.Workspace(), True)):
        out = np.full((N, oh, ow, F), np.nan, np.float32)
        K.conv2d_transpose_forward(x, k, b, out, ws=ws, serial=serial, **geo)
        np.testing.assert_allclose(out, expect, **tol(KH * KW * C))
    plan = K.plan_conv_transpose(k.shape, **geo)
    out = np.full((N, oh, ow, F), np.nan, np.float32)
    plan.forward(x, k, None, out, relu=True, ws=K.Workspace())
    np.testing.assert_allclose(out, np.maximum(expect - b, 0), **tol(KH * KW * C))
    inference = plan.kernels(training=False, serial=True)
    assert K.bias_act_rows_serial in inference and K.bias_act_rows not in inference
    # gradients of sum(y * dy) by the adjoint identity + central differences
    dy = rand(rng, N, oh, ow, F)
    dx, gk, gb = np.empty_like(x), np.empty_like(k), np.empty(F, np.float32)
    K.conv2d_transpose_backward_input(dy, k, dx, ws=K.Workspace(), **geo)
    K.conv2d_transpose_backward_kernel(x, dy, gk, gb, ws=K.Workspace(), **geo)
    np.testing.assert_allclose(gb, dy.astype(np.float64).sum(axis=(0, 1, 2)), **tol(N * oh * ow))

    def loss(xx, kk):
        return float((ref.conv2d_transpose(xx, kk, None, (sh, sw), (dh, dw), (pt, pl),
                                           (oh, ow)) * dy).sum())

    x64, k64, eps = x.astype(np.float64), k.astype(np.float64), 1e-3
    for idx in [tuple(rng.integers(0, s) for s in x.shape) for _ in range(6)]:
        xp, xm = x64.copy(), x64.copy()
        xp[idx] += eps
        xm[idx] -= eps
        assert dx[idx] == pytest.approx((loss(xp, k64) - loss(xm, k64)) / (2 * eps),
                                        rel=1e-3, abs=1e-3)
    for idx in [tuple(rng.integers(0, s) for s in k.shape) for _ in range(6)]:
        kp, km = k64.copy(), k64.copy()
        kp[idx] += eps
        km[idx] -= eps
        assert gk[idx] == pytest.approx((loss(x64, kp) - loss(x64, km)) / (2 * eps),
                                        rel=1e-3, abs=1e-3)
