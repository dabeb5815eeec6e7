"""The fast kernel paths (in-region sgemm, thin first-conv kernels) against numpy references.

Each path is forced explicitly (small chunk sizes, BLAS switched off, direct calls) so a
regression in one cannot hide behind the driver picking another.
"""

import kernel_reference as ref
import numpy as np
import pytest

from visualcnn.engine import kernels as K
from visualcnn.engine.kernels import blas
from visualcnn.engine.kernels import conv as conv_mod

# (N, H, W, C, CO, KH, KW, sh, sw, dh, dw, padding)
GEMM_CASES = [
    (5, 13, 13, 32, 64, 3, 3, 1, 1, 1, 1, "valid"),   # the seed conv2, odd batch
    (3, 9, 8, 8, 5, 3, 3, 2, 2, 1, 1, "same"),        # C >= 8 with padding and stride
    (4, 12, 12, 1, 6, 5, 5, 1, 1, 1, 1, "same"),      # LeNet-5 conv1: C = 1 unfold path
    (3, 10, 11, 3, 7, 3, 2, 1, 2, 2, 1, "same"),      # C = 3, dilation, mixed stride
    (2, 7, 7, 2, 4, 2, 2, 2, 2, 1, 2, "valid"),       # dw = 2: per-tap unfold copy
]
THIN_CASES = [
    (3, 12, 11, 1, 32, 3, 3, 1, 1, 1, 1, "valid"),    # the seed conv1
    (2, 9, 9, 1, 20, 3, 3, 1, 1, 1, 1, "same"),       # padding, CO not a multiple of 16
    (2, 11, 10, 1, 8, 3, 3, 2, 1, 1, 1, "same"),      # row stride 2
    (2, 11, 11, 1, 16, 3, 3, 1, 1, 2, 2, "valid"),    # dilation 2
    (2, 10, 9, 2, 5, 2, 3, 1, 1, 1, 1, "same"),       # general thin kernel (not 3x3x1)
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


@pytest.fixture
def one_image_chunks(monkeypatch):
    """Every parallel sgemm chunk holds one image: many chunks, every worker busy (and
    single-channel convs go through sgemm too, not the plane kernels)."""
    monkeypatch.setattr(conv_mod, "GEMM_ROWS", 1)
    monkeypatch.setattr(conv_mod, "THIN_PLANE", False)


needs_blas = pytest.mark.skipif(not blas.available(), reason="numpy's OpenBLAS cblas_sgemm not found")


@needs_blas
@pytest.mark.parametrize("case", GEMM_CASES, ids=ids(GEMM_CASES))
@pytest.mark.parametrize("serial", [False, True])
def test_sgemm_region_forward(case, serial, one_image_chunks):
    x, w, b, _, (oh, ow), pads = data(case)
    N, CO, KH, KW, C = case[0], case[4], case[5], case[6], case[3]
    expect = np.maximum(ref.conv2d(x, w, b, case[7:9], case[9:11], pads, (oh, ow)), 0)
    assert K.use_gemm(w)
    out = np.full((N, oh, ow, CO), np.nan, np.float32)
    kept = K.conv2d_forward(x, w, b, out, relu=True, ws=K.Workspace(), serial=serial, **kwargs(case, pads))
    assert kept is False  # KEEP_COLS is off: the backward unfolds each chunk again
    np.testing.assert_allclose(out, expect, **tol(KH * KW * C))


@needs_blas
@pytest.mark.parametrize("case", GEMM_CASES, ids=ids(GEMM_CASES))
def test_sgemm_region_backward(case, one_image_chunks):
    x, w, _, dy, _, pads = data(case, seed=1)
    N, H, W, C, CO, KH, KW = case[:7]
    ex_dx, ex_dw, ex_db = ref.conv2d_grads(x, w, dy, case[7:9], case[9:11], pads)
    ws = K.Workspace()
    for _ in range(2):  # the second call reuses (and must fully overwrite) the workspace
        dx = np.full_like(x, np.nan)
        K.conv2d_backward_input(dy, w, dx, ws=ws, **kwargs(case, pads))
        np.testing.assert_allclose(dx, ex_dx, **tol(KH * KW * CO))
        gk, gb = np.full_like(w, np.nan), np.full(CO, np.nan, np.float32)
        K.conv2d_backward_kernel(x, dy, gk, gb, ws=ws, **kwargs(case, pads))
        np.testing.assert_allclose(gk, ex_dw, **tol(N * dy.shape[1] * dy.shape[2]))
        np.testing.assert_allclose(gb, ex_db, **tol(N * dy.shape[1] * dy.shape[2]))
    gk = np.full_like(w, np.nan)
    K.conv2d_backward_kernel(x, dy, gk, None, ws=ws, **kwargs(case, pads))
    np.testing.assert_allclose(gk, ex_dw, **tol(N * dy.shape[1] * dy.shape[2]))


@needs_blas
def test_sgemm_region_keeps_cols_for_reuse_when_asked(monkeypatch):
    monkeypatch.setattr(conv_mod, "KEEP_COLS", True)
    case = GEMM_CASES[0]
    x, w, b, dy, (oh, ow), pads = data(case, seed=2)
    ws = K.Workspace()
    out = np.empty((case[0], oh, ow, case[4]), np.float32)
    assert K.conv2d_forward(x, w, b, out, ws=ws, serial=False) is True
    ws._buffers["scratch"][:] = np.nan  # the reuse path must not read the scratch
    gk, gb = np.empty_like(w), np.empty(case[4], np.float32)
    K.conv2d_backward_kernel(x, dy, gk, gb, ws=ws, reuse_cols=True)
    _, ex_dw, ex_db = ref.conv2d_grads(x, w, dy, (1, 1), (1, 1), pads)
    np.testing.assert_allclose(gk, ex_dw, **tol(case[0] * oh * ow))
    np.testing.assert_allclose(gb, ex_db, **tol(case[0] * oh * ow))


@pytest.mark.parametrize("case", GEMM_CASES + THIN_CASES, ids=ids(GEMM_CASES + THIN_CASES))
def test_drivers_without_kernel_blas(case, monkeypatch):
    """Another BLAS (symbol not found): the numpy-matmul and direct paths still agree."""
    monkeypatch.setattr(blas, "SGEMM", None)
    x, w, b, dy, (oh, ow), pads = data(case, seed=3)
    N, H, W, C, CO, KH, KW = case[:7]
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


@pytest.mark.parametrize("case", THIN_CASES, ids=ids(THIN_CASES))
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("with_bias", [False, True])
def test_thin_forward_kernels(case, relu, with_bias):
    x, w, b, _, (oh, ow), pads = data(case, seed=4)
    N, H, W, C, CO, KH, KW, sh, sw, dh, dw, _ = case
    b = b if with_bias else None
    expect = ref.conv2d(x, w, b, (sh, sw), (dh, dw), pads, (oh, ow))
    if relu:
        expect = np.maximum(expect, 0.0)
    bias = K.NO_BIAS if b is None else b
    HP, WP = conv_mod._thin_padded_size(x, w, oh, ow, sh, dh, dw, pads[0], pads[2])
    L = ow * CO
    wr, br = np.empty((KH, KW, C, L), np.float32), np.empty(L, np.float32)
    conv_mod.replicate_kernel(w, bias, ow, wr, br)
    xr = np.full((K.parallel.get_num_threads() + 1, HP, C, WP, CO), np.nan, np.float32)
    runs = {}
    for name, fn in (("replicated", conv_mod.conv2d_forward_thin),
                     ("replicated_serial", conv_mod.conv2d_forward_thin_serial)):
        out = np.full((N, oh, ow, CO), np.nan, np.float32)
        fn(x, xr, wr, br, out, sh, dh, dw, pads[0], pads[2], relu)
        runs[name] = out
    if KH == 3 and KW == 3 and C == 1:
        xp = np.full((K.parallel.get_num_threads() + 1, HP, WP), np.nan, np.float32)
        full_bias = np.zeros(CO, np.float32) if b is None else b
        for name, fn in (("3x3c1", conv_mod.conv2d_forward_3x3c1),
                         ("3x3c1_serial", conv_mod.conv2d_forward_3x3c1_serial)):
            out = np.full((N, oh, ow, CO), np.nan, np.float32)
            fn(x, xp, w, full_bias, out, sh, dh, dw, pads[0], pads[2], relu)
            runs[name] = out
    for serial in (False, True):  # the driver, with and without a workspace
        for ws in (None, K.Workspace()):
            out = np.full((N, oh, ow, CO), np.nan, np.float32)
            K.conv2d_forward(x, w, b, out, relu=relu, ws=ws, serial=serial, **kwargs(case, pads))
            runs[f"driver serial={serial} ws={ws is not None}"] = out
    for name, got in runs.items():
        np.testing.assert_allclose(got, expect, err_msg=name, **tol(KH * KW * C))


@pytest.mark.parametrize("case", THIN_CASES, ids=ids(THIN_CASES))
def test_thin_weight_gradient_kernels(case):
    x, w, _, dy, (oh, ow), pads = data(case, seed=5)
    N, H, W, C, CO, KH, KW, sh, sw, dh, dw, _ = case
    _, ex_dw, ex_db = ref.conv2d_grads(x, w, dy, (sh, sw), (dh, dw), pads)
    HP, WP = conv_mod._thin_padded_size(x, w, oh, ow, sh, dh, dw, pads[0], pads[2])
    t = tol(N * oh * ow)
    for T in (1, 2, 3):
        gk, gb = np.full_like(w, np.nan), np.full(CO, np.nan, np.float32)
        conv_mod.conv2d_backward_kernel_thin(
            x, dy, gk, gb, np.empty((T, HP, C, WP, CO), np.float32),
            np.empty((T, KH, KW, C, ow * CO), np.float32), np.empty((T, ow * CO), np.float32),
            sh, dh, dw, pads[0], pads[2])
        np.testing.assert_allclose(gk, ex_dw, err_msg=f"replicated T={T}", **t)
        np.testing.assert_allclose(gb, ex_db, err_msg=f"replicated T={T}", **t)
        if KH == 3 and KW == 3 and C == 1:
            gk, gb = np.full_like(w, np.nan), np.full(CO, np.nan, np.float32)
            conv_mod.conv2d_backward_kernel_3x3c1(
                x, dy, gk, gb, np.empty((T, HP, WP), np.float32), np.empty((T, 9, CO), np.float32),
                np.empty((T, CO), np.float32), sh, dh, dw, pads[0], pads[2])
            np.testing.assert_allclose(gk, ex_dw, err_msg=f"3x3c1 T={T}", **t)
            np.testing.assert_allclose(gb, ex_db, err_msg=f"3x3c1 T={T}", **t)
    for ws in (None, K.Workspace()):
        gk = np.full_like(w, np.nan)
        K.conv2d_backward_kernel(x, dy, gk, None, ws=ws, **kwargs(case, pads))
        np.testing.assert_allclose(gk, ex_dw, err_msg=f"driver no bias ws={ws}", **t)


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


# ------------------------------------------------------------------ fused first block

BLOCK_CASES = [  # (N, H, W, CO, sh, dh, padding, pool, pool_strides)
    (5, 28, 28, 32, 1, 1, "valid", (2, 2), (2, 2)),    # the seed CNN's first block
    (3, 12, 11, 20, 1, 1, "same", (2, 2), (2, 2)),     # padding, odd map, CO % 16 != 0
    (2, 13, 12, 16, 2, 1, "valid", (3, 3), (2, 2)),    # row stride, overlapping windows
    (2, 13, 13, 8, 1, 2, "same", (2, 3), (1, 2)),      # dilation, non-square pool
]


@pytest.mark.parametrize("case", BLOCK_CASES)
@pytest.mark.parametrize("with_bias", [True, False])
def test_fused_block_equals_unfused_layers(case, with_bias):
    N, H, W, CO, sh, dh, padding, pool, pstr = case
    rng = np.random.default_rng(8)
    x = rng.standard_normal((N, H, W, 1)).astype(np.float32)
    w = rng.standard_normal((3, 3, 1, CO)).astype(np.float32)
    b = rng.standard_normal(CO).astype(np.float32) if with_bias else None
    oh, pt, _ = ref.pads_for(H, 3, sh, dh, padding)
    ow, pl, _ = ref.pads_for(W, 3, 1, dh, padding)
    geo = dict(strides=(sh, 1), dilation=(dh, dh), pad=(pt, pl))
    # unfused reference: the kernels the layers call one after the other
    z = np.empty((N, oh, ow, CO), np.float32)
    K.conv2d_forward(x, w, b, z, relu=True, ws=K.Workspace(), serial=False, **geo)
    ph, pw = (oh - pool[0]) // pstr[0] + 1, (ow - pool[1]) // pstr[1] + 1
    y = np.empty((N, ph, pw, CO), np.float32)
    arg = np.empty(y.shape, np.int32)
    K.maxpool2d_forward(z, y, arg, pool[0], pool[1], pstr[0], pstr[1], 0, 0)
    assert K.fused_block_supported(w.shape, (sh, 1))
    ws = K.Workspace()
    for keep in (False, True):
        y2 = np.full_like(y, np.nan)
        arg2 = np.full(y.shape, -5, np.int32)
        z2 = np.full_like(z, np.nan) if keep else None
        K.conv_relu_maxpool_forward(x, w, b, y2, arg2, (oh, ow), pool=pool, pool_strides=pstr,
                                    conv_out=z2, ws=ws, **geo)
        np.testing.assert_allclose(y2, y, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(arg2, arg)
        if keep:
            np.testing.assert_allclose(z2, z, rtol=1e-5, atol=1e-5)
    dp = rng.standard_normal(y.shape).astype(np.float32)
    dz = np.empty_like(z)
    K.maxpool2d_backward(dp, arg, dz)
    dz *= z > 0
    ex_gk, ex_gb = np.empty_like(w), np.empty(CO, np.float32)
    K.conv2d_backward_kernel(x, dz, ex_gk, ex_gb, **geo)
    for threads in (1, 2, 3):
        gk, gb = np.full_like(w, np.nan), np.full(CO, np.nan, np.float32)
        K.conv_relu_maxpool_backward_kernel(x, dp, arg, y, gk, gb, (oh, ow), ws=ws, threads=threads, **geo)
        np.testing.assert_allclose(gk, ex_gk, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(gb, ex_gb, rtol=1e-4, atol=1e-4)
    gk = np.full_like(w, np.nan)
    K.conv_relu_maxpool_backward_kernel(x, dp, arg, y, gk, None, (oh, ow), **geo)
    np.testing.assert_allclose(gk, ex_gk, rtol=1e-4, atol=1e-4)


def test_fused_block_refuses_other_kernels():
    assert not K.fused_block_supported((3, 3, 2, 8))
    assert not K.fused_block_supported((5, 5, 1, 8))
    assert not K.fused_block_supported((3, 3, 1, 8), strides=(1, 2))
    x = np.zeros((1, 8, 8, 2), np.float32)
    with pytest.raises(ValueError, match="unsupported kernel"):
        K.conv_relu_maxpool_forward(x, np.zeros((3, 3, 2, 4), np.float32), None,
                                    np.empty((1, 3, 3, 4), np.float32), np.empty((1, 3, 3, 4), np.int32), (6, 6))


PLANE_CASES = [  # C = 1, unit strides, not 3x3
    (3, 28, 28, 1, 6, 5, 5, 1, 1, 1, 1, "same"),     # LeNet-5 conv1
    (2, 11, 9, 1, 20, 2, 3, 1, 1, 2, 1, "valid"),     # dilation, CO > 16
    (2, 8, 9, 1, 4, 4, 4, 1, 1, 1, 2, "same"),        # even kernel, odd padding
    (1, 6, 7, 1, 3, 1, 1, 1, 1, 1, 1, "valid"),       # 1x1
]


@pytest.mark.parametrize("case", PLANE_CASES, ids=ids(PLANE_CASES))
@pytest.mark.parametrize("relu", [False, True])
def test_plane_kernels_forward_and_weight_gradient(case, relu):
    x, w, b, dy, (oh, ow), pads = data(case, seed=9)
    N, H, W, C, CO, KH, KW = case[:7]
    assert conv_mod.use_plane(w, case[7:9])
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
    w5 = np.zeros((5, 5, 1, 6), np.float32)
    assert not conv_mod.use_plane(w5, (2, 2)) and not conv_mod.use_plane(w5, (1, 2))
    assert not conv_mod.use_plane(np.zeros((3, 3, 1, 6), np.float32), (1, 1))
    assert not conv_mod.use_plane(np.zeros((5, 5, 2, 6), np.float32), (1, 1))
