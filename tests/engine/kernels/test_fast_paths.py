"""The fast conv strategies (in-region sgemm, few-channel and single-channel kernels) against
numpy references.

Each path is forced explicitly (small chunk sizes, BLAS switched off, direct calls) so a
regression in one cannot hide behind the driver picking another.
"""

import kernel_reference as ref
import numpy as np
import pytest

from visualcnn.engine import kernels as K
from visualcnn.engine.kernels import blas
from visualcnn.engine.kernels.conv import few_channel, im2col_gemm, single_channel, winograd, winograd4

# (N, H, W, C, CO, KH, KW, sh, sw, dh, dw, padding)
GEMM_CASES = [
    (5, 13, 13, 32, 64, 3, 3, 1, 1, 1, 1, "valid"),   # the seed conv2, odd batch
    (3, 9, 8, 8, 5, 3, 3, 2, 2, 1, 1, "same"),        # C >= 8 with padding and stride
    (4, 12, 12, 1, 6, 5, 5, 1, 1, 1, 1, "same"),      # LeNet-5 conv1: C = 1 unfold path
    (3, 10, 11, 3, 7, 3, 2, 1, 2, 2, 1, "same"),      # C = 3, dilation, mixed stride
    (2, 7, 7, 2, 4, 2, 2, 2, 2, 1, 2, "valid"),       # dw = 2: per-tap unfold copy
    (2, 6, 7, 6, 16, 5, 5, 1, 1, 1, 1, "same"),       # C >= 4, unit strides: runs, clipped at borders
    (2, 4, 3, 5, 4, 5, 5, 1, 1, 1, 1, "same"),        # image narrower than the kernel
    (2, 10, 10, 6, 16, 5, 5, 1, 1, 1, 1, "valid"),    # LeNet-5 conv2
]
FEW_CASES = [  # 3x3 kernels on C <= 4
    (3, 12, 11, 1, 32, 3, 3, 1, 1, 1, 1, "valid"),    # the seed conv1
    (2, 9, 9, 1, 20, 3, 3, 1, 1, 1, 1, "same"),       # padding, CO not a multiple of 16
    (2, 11, 10, 1, 8, 3, 3, 2, 1, 1, 1, "same"),      # row stride 2
    (2, 11, 11, 1, 16, 3, 3, 1, 1, 2, 2, "valid"),    # dilation 2
    (3, 14, 13, 3, 32, 3, 3, 1, 1, 1, 1, "same"),     # the CIFAR-shaped first conv
    (2, 13, 12, 3, 24, 3, 3, 2, 2, 1, 1, "same"),     # RGB, strides 2, odd padding at the end
    (2, 12, 12, 4, 5, 3, 3, 1, 2, 2, 1, "valid"),     # C = 4, column stride, row dilation
    (2, 7, 9, 2, 3, 3, 3, 1, 1, 1, 2, "same"),        # C = 2, column dilation, few filters
]


def ids(cases):
    return [f"n{c[0]}_{c[1]}x{c[2]}x{c[3]}->{c[4]}_k{c[5]}x{c[6]}_s{c[7]}{c[8]}_d{c[9]}{c[10]}_{c[11]}"
            for c in cases]


def geometry(case):
    N, H, W, C, CO, KH, KW, sh, sw, dh, dw, padding = case
    oh, pt, pb = ref.pads_for(H, KH, sh, dh, padding)
    ow, pl, pr = ref.pads_for(W, KW, sw, dw, padding)
    return (oh, ow), (pt, pb, pl, pr)


def data(case, seed=0):
    rng = np.random.default_rng(seed)
    N, H, W, C, CO, KH, KW = case[:7]
    (oh, ow), pads = geometry(case)
    f = np.float32
    return (rng.standard_normal((N, H, W, C)).astype(f), rng.standard_normal((KH, KW, C, CO)).astype(f),
            rng.standard_normal(CO).astype(f), rng.standard_normal((N, oh, ow, CO)).astype(f), (oh, ow), pads)


def tol(k):
    return dict(rtol=1e-4, atol=2e-5 * max(1.0, np.sqrt(k)))


def kwargs(case, pads):
    N, H, W, C, CO, KH, KW, sh, sw, dh, dw, _ = case
    return dict(strides=(sh, sw), dilation=(dh, dw), pad=(pads[0], pads[2]))


@pytest.fixture(params=[1, 37])
def one_image_chunks(monkeypatch, request):
    """Small parallel sgemm chunks: one output row each (many chunks, every worker busy),
    or a few rows that cross image boundaries (37 pixels: 3 rows of 11 ...)."""
    monkeypatch.setattr(im2col_gemm, "GEMM_ROWS", request.param)


needs_blas = pytest.mark.skipif(not blas.available(), reason="numpy's OpenBLAS cblas_sgemm not found")


def sgemm_plan(case, pads):
    N, H, W, C, CO, KH, KW, sh, sw, dh, dw, _ = case
    return K.plan_conv((KH, KW, C, CO), (sh, sw), (dh, dw), (pads[0], pads[2]), force="im2col_sgemm")


@needs_blas
@pytest.mark.parametrize("case", GEMM_CASES + FEW_CASES, ids=ids(GEMM_CASES + FEW_CASES))
@pytest.mark.parametrize("serial", [False, True])
def test_sgemm_region_forward(case, serial, one_image_chunks):
    x, w, b, _, (oh, ow), pads = data(case)
    N, CO, KH, KW, C = case[0], case[4], case[5], case[6], case[3]
    expect = np.maximum(ref.conv2d(x, w, b, case[7:9], case[9:11], pads, (oh, ow)), 0)
    out = np.full((N, oh, ow, CO), np.nan, np.float32)
    sgemm_plan(case, pads).forward(x, w, b, out, relu=True, ws=K.Workspace(), serial=serial)
    np.testing.assert_allclose(out, expect, **tol(KH * KW * C))


@needs_blas
@pytest.mark.parametrize("case", GEMM_CASES + FEW_CASES, ids=ids(GEMM_CASES + FEW_CASES))
def test_sgemm_region_backward(case, one_image_chunks):
    x, w, _, dy, _, pads = data(case, seed=1)
    N, H, W, C, CO, KH, KW = case[:7]
    ex_dx, ex_dw, ex_db = ref.conv2d_grads(x, w, dy, case[7:9], case[9:11], pads)
    ws = K.Workspace()
    plan = sgemm_plan(case, pads)
    for serial in (False, True):  # the second call reuses (and must fully overwrite) the workspace
        dx = np.full_like(x, np.nan)
        plan.backward_input(dy, w, dx, ws=ws, serial=serial)
        np.testing.assert_allclose(dx, ex_dx, **tol(KH * KW * CO))
        gk, gb = np.full_like(w, np.nan), np.full(CO, np.nan, np.float32)
        plan.backward_kernel(x, dy, gk, gb, ws=ws)
        np.testing.assert_allclose(gk, ex_dw, **tol(N * dy.shape[1] * dy.shape[2]))
        np.testing.assert_allclose(gb, ex_db, **tol(N * dy.shape[1] * dy.shape[2]))
    gk = np.full_like(w, np.nan)
    plan.backward_kernel(x, dy, gk, None, ws=ws)
    np.testing.assert_allclose(gk, ex_dw, **tol(N * dy.shape[1] * dy.shape[2]))


@pytest.mark.parametrize("case", GEMM_CASES + FEW_CASES, ids=ids(GEMM_CASES + FEW_CASES))
def test_drivers_without_kernel_blas(case, monkeypatch):
    """Another BLAS (symbol not found): the planner falls back to np.matmul, and agrees."""
    monkeypatch.setattr(blas, "SGEMM", None)
    x, w, b, dy, (oh, ow), pads = data(case, seed=3)
    N, H, W, C, CO, KH, KW = case[:7]
    assert K.plan_conv(w.shape, case[7:9], case[9:11], (pads[0], pads[2])).input_strategy.name == "im2col_matmul"
    expect = ref.conv2d(x, w, b, case[7:9], case[9:11], pads, (oh, ow))
    ex_dx, ex_dw, ex_db = ref.conv2d_grads(x, w, dy, case[7:9], case[9:11], pads)
    ws = K.Workspace()
    for serial in (False, True):
        out = np.full((N, oh, ow, CO), np.nan, np.float32)
        K.conv2d_forward(x, w, b, out, ws=ws, serial=serial, **kwargs(case, pads))
        np.testing.assert_allclose(out, expect, **tol(KH * KW * C))
    dx = np.full_like(x, np.nan)
    K.conv2d_backward_input(dy, w, dx, ws=ws, **kwargs(case, pads))
    np.testing.assert_allclose(dx, ex_dx, **tol(KH * KW * CO))
    gk, gb = np.full_like(w, np.nan), np.full(CO, np.nan, np.float32)
    K.conv2d_backward_kernel(x, dy, gk, gb, ws=ws, **kwargs(case, pads))
    np.testing.assert_allclose(gk, ex_dw, **tol(N * oh * ow))
    np.testing.assert_allclose(gb, ex_db, **tol(N * oh * ow))


@pytest.mark.parametrize("case", FEW_CASES, ids=ids(FEW_CASES))
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("with_bias", [False, True])
def test_few_channel_forward_kernels(case, relu, with_bias):
    x, w, b, _, (oh, ow), pads = data(case, seed=4)
    N, H, W, C, CO, KH, KW, sh, sw, dh, dw, _ = case
    b = b if with_bias else None
    expect = ref.conv2d(x, w, b, (sh, sw), (dh, dw), pads, (oh, ow))
    if relu:
        expect = np.maximum(expect, 0.0)
    assert K.plan_conv(w.shape, (sh, sw), (dh, dw), (pads[0], pads[2])).forward_strategy.name == "few_channel_3x3"
    shape = few_channel.padded_planes_shape(x.shape, oh, ow, sh, sw, dh, dw, pads[0], pads[2])
    xp = np.full((K.parallel.get_num_threads() + 1, *shape), np.nan, np.float32)
    full_bias = np.zeros(CO, np.float32) if b is None else b
    wt = np.empty((C, 9, CO), np.float32)
    few_channel.channel_major(w, wt)
    runs = {}
    for name, fn in (("parallel", K.conv2d_forward_3x3few), ("serial", K.conv2d_forward_3x3few_serial)):
        out = np.full((N, oh, ow, CO), np.nan, np.float32)
        fn(x, xp, wt, full_bias, out, sh, sw, dh, dw, pads[0], pads[2], relu)
        runs[name] = out
    for serial in (False, True):  # the driver, with and without a workspace
        for ws in (None, K.Workspace()):
            out = np.full((N, oh, ow, CO), np.nan, np.float32)
            K.conv2d_forward(x, w, b, out, relu=relu, ws=ws, serial=serial, **kwargs(case, pads))
            runs[f"driver serial={serial} ws={ws is not None}"] = out
    for name, got in runs.items():
        np.testing.assert_allclose(got, expect, err_msg=name, **tol(KH * KW * C))


@pytest.mark.parametrize("case", FEW_CASES, ids=ids(FEW_CASES))
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no-bias"])
def test_few_channel_conv_into_a_max_pool_is_the_two_passes_bit_for_bit(case, with_bias):
    """forward_pooled: relu(conv) pooled 2x2 / stride 2 without storing the conv output
    gives the pool's output and winners exactly as the conv's forward and then
    maxpool2d_forward do, for any conv geometry, odd sizes (a last row or column no
    window reads) included, on the workers and on the calling thread."""
    x, w, b, _, (oh, ow), pads = data(case, seed=6)
    N, H, W, C, CO, KH, KW, sh, sw, dh, dw, _ = case
    b = b if with_bias else None
    plan = K.plan_conv(w.shape, (sh, sw), (dh, dw), (pads[0], pads[2]))
    assert plan.takes_pooled_forward
    z = np.empty((N, oh, ow, CO), np.float32)
    plan.forward(x, w, b, z, relu=True, serial=True)
    ph, pw = oh // 2, ow // 2
    expect_y = np.empty((N, ph, pw, CO), np.float32)
    expect_arg = np.empty((N, ph, pw, CO), np.int32)
    K.maxpool2d_forward(z, expect_y, expect_arg, 2, 2, 2, 2, 0, 0)
    for serial in (False, True):
        for ws in (None, K.Workspace()):
            y = np.full((N, ph, pw, CO), np.nan, np.float32)
            arg = np.full((N, ph, pw, CO), -7, np.int32)
            plan.forward_pooled(x, w, b, z.shape, y, arg, ws=ws, serial=serial)
            assert np.array_equal(y, expect_y), f"serial={serial}"
            assert np.array_equal(arg, expect_arg), f"serial={serial}"
    assert (expect_y > 0).any() and (expect_y == 0).any()  # relu cut some windows, not all


@pytest.mark.parametrize("case", FEW_CASES, ids=ids(FEW_CASES))
def test_few_channel_weight_gradient_kernels(case):
    x, w, _, dy, (oh, ow), pads = data(case, seed=5)
    N, H, W, C, CO, KH, KW, sh, sw, dh, dw, _ = case
    _, ex_dw, ex_db = ref.conv2d_grads(x, w, dy, (sh, sw), (dh, dw), pads)
    shapes = few_channel.gradient_scratch_shapes(x.shape, oh, ow, CO, sh, sw, dh, dw, pads[0], pads[2])
    t = tol(N * oh * ow)
    for T in (1, 2, 3):
        if sw != 1:  # the planner sends these to im2col (test_conv_kernels covers them)
            assert not few_channel.applies_to_kernel_gradient(w.shape, (sh, sw))
            break
        gk, gb = np.full_like(w, np.nan), np.full(CO, np.nan, np.float32)
        planes, rows, dz = (np.full((T, *shape), np.nan, np.float32) for shape in shapes)  # no stale zeros
        K.conv2d_backward_kernel_3x3few(
            x, dy, gk, gb, planes, rows, dz, np.empty((T, C, 9, CO), np.float32),
            np.empty((T, CO), np.float32), sh, dh, dw, pads[0], pads[2])
        np.testing.assert_allclose(gk, ex_dw, err_msg=f"T={T}", **t)
        np.testing.assert_allclose(gb, ex_db, err_msg=f"T={T}", **t)
    for ws in (None, K.Workspace()):
        gk = np.full_like(w, np.nan)
        K.conv2d_backward_kernel(x, dy, gk, None, ws=ws, **kwargs(case, pads))
        np.testing.assert_allclose(gk, ex_dw, err_msg=f"driver no bias ws={ws}", **t)


def test_chunks_are_whole_output_rows_or_whole_images():
    assert im2col_gemm.rows_per_chunk(11, 11, 32) == 512 // 11
    assert im2col_gemm.rows_per_chunk(28, 28, 32) == 18
    assert im2col_gemm.rows_per_chunk(11, 11, 3) == 11 * 4   # C < 4: whole images
    assert im2col_gemm.rows_per_chunk(30, 600, 8) == 1       # a row wider than GEMM_ROWS


def test_blas_binding_multiplies_like_numpy():
    if not blas.available():
        pytest.skip("numpy's OpenBLAS cblas_sgemm not found")
    rng = np.random.default_rng(6)
    # a tiny GEMM through the same in-region call the conv kernels make (1x1 conv)
    x = rng.standard_normal((3, 4, 5, 40)).astype(np.float32)
    w = rng.standard_normal((1, 1, 40, 7)).astype(np.float32)
    out = np.empty((3, 4, 5, 7), np.float32)
    K.conv2d_forward(x, w, None, out, ws=K.Workspace(), serial=False)
    np.testing.assert_allclose(out, x @ w[0, 0], rtol=1e-4, atol=1e-4)


PLANE_CASES = [  # C = 1, unit strides, not 3x3
    (3, 28, 28, 1, 6, 5, 5, 1, 1, 1, 1, "same"),     # LeNet-5 conv1
    (2, 11, 9, 1, 20, 2, 3, 1, 1, 2, 1, "valid"),     # dilation, CO > 16
    (2, 8, 9, 1, 4, 4, 4, 1, 1, 1, 2, "same"),        # even kernel, odd padding
    (1, 6, 7, 1, 3, 1, 1, 1, 1, 1, 1, "valid"),       # 1x1
    (2, 12, 11, 1, 5, 3, 7, 1, 1, 1, 2, "same"),      # a row wider than one group of TAPS
    (1, 9, 10, 1, 7, 6, 6, 1, 1, 1, 1, "valid"),      # TAPS + 1 columns
]


@pytest.mark.parametrize("case", PLANE_CASES, ids=ids(PLANE_CASES))
@pytest.mark.parametrize("relu", [False, True])
def test_plane_kernels_forward_and_weight_gradient(case, relu):
    x, w, b, dy, (oh, ow), pads = data(case, seed=9)
    N, H, W, C, CO, KH, KW = case[:7]
    plan = K.plan_conv(w.shape, case[7:9], case[9:11], (pads[0], pads[2]))
    assert plan.forward_strategy.name == plan.kernel_strategy.name == "single_channel_plane"
    expect = ref.conv2d(x, w, b, case[7:9], case[9:11], pads, (oh, ow))
    if relu:
        expect = np.maximum(expect, 0)
    _, ex_dw, ex_db = ref.conv2d_grads(x, w, dy, case[7:9], case[9:11], pads)
    for ws in (None, K.Workspace()):
        for serial in (False, True):
            out = np.full((N, oh, ow, CO), np.nan, np.float32)
            K.conv2d_forward(x, w, b, out, relu=relu, ws=ws, serial=serial, **kwargs(case, pads))
            np.testing.assert_allclose(out, expect, err_msg=f"serial={serial}", **tol(KH * KW))
        gk, gb = np.full_like(w, np.nan), np.full(CO, np.nan, np.float32)
        K.conv2d_backward_kernel(x, dy, gk, gb, ws=ws, **kwargs(case, pads))
        np.testing.assert_allclose(gk, ex_dw, **tol(N * oh * ow))
        np.testing.assert_allclose(gb, ex_db, **tol(N * oh * ow))
        gk = np.full_like(w, np.nan)
        K.conv2d_backward_kernel(x, dy, gk, None, ws=ws, **kwargs(case, pads))
        np.testing.assert_allclose(gk, ex_dw, **tol(N * oh * ow))
    out = np.full((N, oh, ow, CO), np.nan, np.float32)
    K.conv2d_forward(x, w, None, out, ws=K.Workspace(), **kwargs(case, pads))
    np.testing.assert_allclose(out, ref.conv2d(x, w, None, case[7:9], case[9:11], pads, (oh, ow)),
                               **tol(KH * KW))


def test_plane_path_is_not_used_for_strides_or_3x3():
    assert not single_channel.applies((5, 5, 1, 6), (2, 2))
    assert not single_channel.applies((5, 5, 1, 6), (1, 2))
    assert not single_channel.applies((3, 3, 1, 6), (1, 1))
    assert not single_channel.applies((5, 5, 2, 6), (1, 1))


WINO_CASES = [  # 3x3, unit strides
    (5, 13, 13, 32, 64, 3, 3, 1, 1, 1, 1, "valid"),   # the seed conv2, odd batch
    (2, 12, 11, 16, 20, 3, 3, 1, 1, 1, 1, "same"),    # odd output width: partial tiles
    (2, 15, 14, 16, 9, 3, 3, 1, 1, 2, 2, "same"),     # dilation 2
    (3, 11, 16, 18, 8, 3, 3, 1, 1, 1, 3, "valid"),    # dilation 1 / 3
]


@needs_blas
@pytest.mark.parametrize("case", WINO_CASES, ids=ids(WINO_CASES))
@pytest.mark.parametrize("tiles", [3, 40, 256])
def test_winograd_in_chunks_that_split_and_join_images(case, tiles, monkeypatch):
    """3 tiles per chunk: bands of tile rows inside an image; 40: chunks that end inside
    one image and start inside the next; 256: several whole images per chunk."""
    monkeypatch.setattr(winograd, "WINO_TILES", tiles)
    x, w, b, dy, (oh, ow), pads = data(case, seed=11)
    N, H, W, C, CO, KH, KW, sh, sw, dh, dw, _ = case
    plan = K.plan_conv(w.shape, (sh, sw), (dh, dw), (pads[0], pads[2]))
    assert plan.forward_strategy.name == plan.input_strategy.name == plan.kernel_strategy.name == "winograd"
    expect = np.maximum(ref.conv2d(x, w, b, (sh, sw), (dh, dw), pads, (oh, ow)), 0)
    ex_dx, ex_dw, ex_db = ref.conv2d_grads(x, w, dy, (sh, sw), (dh, dw), pads)
    ws = K.Workspace()
    for serial in (False, True):
        out = np.full((N, oh, ow, CO), np.nan, np.float32)
        plan.forward(x, w, b, out, relu=True, ws=ws, serial=serial)
        np.testing.assert_allclose(out, expect, err_msg=f"forward serial={serial}", **tol(9 * C))
        dx = np.full_like(x, np.nan)
        plan.backward_input(dy, w, dx, ws=ws, serial=serial)
        np.testing.assert_allclose(dx, ex_dx, err_msg=f"dx serial={serial}", **tol(9 * CO))
    gk, gb = np.full_like(w, np.nan), np.full(CO, np.nan, np.float32)
    plan.backward_kernel(x, dy, gk, gb, ws=ws)
    np.testing.assert_allclose(gk, ex_dw, **tol(N * oh * ow))
    np.testing.assert_allclose(gb, ex_db, **tol(N * oh * ow))


WINO4_CASES = [  # 3x3, unit strides, no dilation
    (5, 13, 13, 32, 64, 3, 3, 1, 1, 1, 1, "valid"),   # the seed conv2: 11x11, partial 4x4 tiles
    (3, 28, 28, 32, 32, 3, 3, 1, 1, 1, 1, "same"),    # whole tiles
    (2, 14, 13, 16, 20, 3, 3, 1, 1, 1, 1, "same"),    # 14x13: partial rows and columns
    (1, 7, 7, 128, 24, 3, 3, 1, 1, 1, 1, "same"),     # one image, 2x2 tiles
    (2, 5, 6, 16, 9, 3, 3, 1, 1, 1, 1, "valid"),      # a 3x4 output: one tile row
]


@needs_blas
@pytest.mark.parametrize("case", WINO4_CASES, ids=ids(WINO4_CASES))
@pytest.mark.parametrize("tiles", [1, 5, 112])
def test_winograd4_forward_and_input_gradient_in_any_chunking(case, tiles, monkeypatch):
    """1 tile per chunk: one tile row per chunk at most; 5: chunks that end inside one
    image and start inside the next; 112: several images per chunk (the weight gradient
    sums its chunks in groups: any chunking gives the same sum within rounding)."""
    monkeypatch.setattr(winograd4, "WINO4_TILES", tiles)
    x, w, b, dy, (oh, ow), pads = data(case, seed=12)
    N, H, W, C, CO, KH, KW, sh, sw, dh, dw, _ = case
    forced = K.plan_conv(w.shape, (sh, sw), (dh, dw), (pads[0], pads[2]), force="winograd4")
    expect = np.maximum(ref.conv2d(x, w, b, (sh, sw), (dh, dw), pads, (oh, ow)), 0)
    ex_dx, ex_dw, ex_db = ref.conv2d_grads(x, w, dy, (sh, sw), (dh, dw), pads)
    ws = K.Workspace()
    for serial in (False, True):
        out = np.full((N, oh, ow, CO), np.nan, np.float32)
        forced.forward(x, w, b, out, relu=True, ws=ws, serial=serial)
        np.testing.assert_allclose(out, expect, err_msg=f"forward serial={serial}", **tol(9 * C))
        out[:] = np.nan
        forced.forward(x, w, None, out, relu=False, ws=ws, serial=serial)
        np.testing.assert_allclose(out, ref.conv2d(x, w, None, (sh, sw), (dh, dw), pads, (oh, ow)),
                                   err_msg=f"forward, no bias, no relu, serial={serial}", **tol(9 * C))
        dx = np.full_like(x, np.nan)
        forced.backward_input(dy, w, dx, ws=ws, serial=serial)
        np.testing.assert_allclose(dx, ex_dx, err_msg=f"dx serial={serial}", **tol(9 * CO))
    for _ in range(2):  # the second call reuses the partial sums: they must be cleared
        gk, gb = np.full_like(w, np.nan), np.full(CO, np.nan, np.float32)
        forced.backward_kernel(x, dy, gk, gb, ws=ws)
        np.testing.assert_allclose(gk, ex_dw, **tol(N * oh * ow))
        np.testing.assert_allclose(gb, ex_db, **tol(N * oh * ow))
    gk = np.full_like(w, np.nan)
    forced.backward_kernel(x, dy, gk, None, ws=ws)
    np.testing.assert_allclose(gk, ex_dw, err_msg="no bias", **tol(N * oh * ow))


@needs_blas
def test_winograd4_takes_the_maps_its_tiles_fill():
    assert winograd4.applies((3, 3, 32, 32), (1, 1), (1, 1), (28, 28))  # 1.78x fewer multiplies
    assert winograd4.applies((3, 3, 64, 64), (1, 1), (1, 1), (14, 14))  # 1.36x
    assert not winograd4.applies((3, 3, 64, 64), (1, 1), (1, 1), (5, 5))  # none fewer
    assert not winograd4.applies((3, 3, 64, 64), (1, 1), (1, 1), (6, 6))
    assert not winograd4.applies((3, 3, 64, 64), (1, 1), (2, 2), (28, 28))  # dilation: F(2x2)
    assert not winograd4.applies((3, 3, 8, 64), (1, 1), (1, 1), (28, 28))  # too few channels
    assert not winograd4.applies((3, 3, 32, 32), (1, 1), (1, 1), (14, 14))  # 16 tiles x 1,024: too little work
    assert winograd4.multiplies(11, 11) == (36 * 9, 16 * 36)
    plan = K.plan_conv((3, 3, 64, 64), pad=(1, 1), input_hw=(14, 14), output_hw=(14, 14))
    assert (plan.forward_strategy.name, plan.input_strategy.name, plan.kernel_strategy.name) == (
        "winograd4", "winograd", "winograd")  # the gradients want 1.5x fewer: 14x14 gives 1.36x


@pytest.mark.parametrize("workers", [2, 3])
def test_winograd_chunks_are_a_multiple_of_the_workers(monkeypatch, workers):
    monkeypatch.setattr(winograd, "scratch_slots", lambda: workers)
    # F(4x4), a 7x7 map, batch 64: 128 tile rows of 2 tiles; 56 rows per chunk would make 3
    rows = winograd4.tile_rows_per_chunk(2, 128)
    assert -(-128 // rows) % workers == 0 and rows * 2 <= winograd4.WINO4_TILES
    # F(2x2), the seed CNN's 11x11 map: 384 tile rows of 6; 42 rows per chunk made 9 full
    # chunks and one of 6 rows
    rows = winograd.tile_rows_per_chunk(6, 384)
    chunks = -(-384 // rows)
    assert chunks % workers == 0 and rows * 6 <= winograd.WINO_TILES
    assert chunks * rows - 384 < chunks  # the last chunk is nearly full


def test_workspace_reuses_views_and_drops_them_when_a_buffer_grows():
    from visualcnn.engine.kernels import Workspace

    ws = Workspace()
    a = ws.get("z", (2, 3))
    a[...] = 7.0
    assert ws.get("z", (2, 3)) is a and ws.get("z", [2, 3]) is a
    b = ws.get("z", (3, 2))  # same buffer, another shape
    assert np.shares_memory(a, b) and b.shape == (3, 2)
    big = ws.get("z", (4, 4))  # grows: a new buffer, the old views are forgotten
    assert not np.shares_memory(big, a)
    again = ws.get("z", (2, 3))
    assert again is not a and np.shares_memory(again, big)
    ints = ws.get("z", (2, 3), np.int32)
    assert ints.dtype == np.int32 and ws.get("z", (2, 3)).dtype == np.float32
    other = ws.get("y", (2, 3))
    assert not np.shares_memory(other, ws.get("z", (2, 3)))
    for n in range(1, Workspace.MAX_VIEWS + 5):  # many shapes: bounded
        assert ws.get("y", (n,)).shape == (n,)
    assert len(ws._views) <= Workspace.MAX_VIEWS
    ws.clear()
    assert ws.get("z", (2, 3)) is not again


def test_the_layers_know_the_few_channel_width_the_kernels_take():
    from visualcnn.engine.layers import conv as conv_layers

    assert conv_layers.FEW_CHANNELS == few_channel.MAX_CHANNELS
