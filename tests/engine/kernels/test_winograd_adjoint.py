"""Both gradients of an F(2x2, 3x3) conv in one pass (kernels/conv/winograd_adjoint.py)
against the plain-numpy reference, and where the planner chooses it."""

import dataclasses

import numba
import numpy as np
import pytest

import kernel_reference as ref
from visualcnn.engine import kernels as K
from visualcnn.engine.kernels.conv import winograd_adjoint

pytestmark = pytest.mark.skipif(not K.blas.available(), reason="no cblas_sgemm: Winograd is not planned")

# (N, H, W, C, CO, dh, dw, pad): the seed CNN's conv2 shape first; then partial tiles,
# channel counts off the vector width, dilations (mixed too), padding (the adjoint is
# only chosen for "valid" maps, but its maths holds for any), batches that do not split
# evenly into chunks of whole images
CASES = [
    (64, 13, 13, 32, 64, 1, 1, 0),
    (5, 12, 9, 16, 8, 1, 1, 0),
    (13, 6, 7, 17, 9, 1, 1, 0),
    (3, 24, 24, 32, 32, 2, 2, 0),
    (2, 14, 13, 17, 8, 3, 2, 0),
    (4, 10, 11, 20, 24, 1, 1, 1),
    (2, 9, 9, 16, 9, 2, 2, 2),
    (1, 5, 5, 16, 16, 1, 1, 0),
]
IDS = [f"n{c[0]}_{c[1]}x{c[2]}x{c[3]}->{c[4]}_d{c[5]}{c[6]}_p{c[7]}" for c in CASES]


def _data(case, seed=0):
    N, H, W, C, CO, dh, dw, pad = case
    oh, ow = H + 2 * pad - 2 * dh, W + 2 * pad - 2 * dw
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, H, W, C)).astype(np.float32)
    kernel = (rng.standard_normal((3, 3, C, CO)) * 0.2).astype(np.float32)
    dy = rng.standard_normal((N, oh, ow, CO)).astype(np.float32)
    return x, kernel, dy


def _both(case, x, kernel, dy, ws, bias=True):
    N, H, W, C, CO, dh, dw, pad = case
    dx = np.full_like(x, np.nan)
    gk = np.full_like(kernel, np.nan)
    gb = np.full(CO if bias else 0, np.nan, np.float32)
    winograd_adjoint.WINOGRAD_ADJOINT.backward(x, dy, kernel, gk, gb, dx, (1, 1, dh, dw, pad, pad), ws)
    return dx, gk, gb


def _tol(k):
    return dict(rtol=1e-4, atol=2e-5 * max(1.0, np.sqrt(k)))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_both_gradients_match_the_reference(case):
    N, H, W, C, CO, dh, dw, pad = case
    x, kernel, dy = _data(case)
    ex_dx, ex_dk, ex_db = ref.conv2d_grads(x, kernel, dy, (1, 1), (dh, dw), (pad, pad, pad, pad))
    reduction = N * dy.shape[1] * dy.shape[2]
    for ws in (None, K.Workspace()):
        for _ in range(2):  # a second call reuses the workspace and must overwrite everything
            dx, gk, gb = _both(case, x, kernel, dy, ws)
            np.testing.assert_allclose(dx, ex_dx, **_tol(9 * CO))
            np.testing.assert_allclose(gk, ex_dk, **_tol(reduction))
            np.testing.assert_allclose(gb, ex_db, **_tol(reduction))
    dx, gk, gb = _both(case, x, kernel, dy, K.Workspace(), bias=False)
    np.testing.assert_allclose(dx, ex_dx, **_tol(9 * CO))
    np.testing.assert_allclose(gk, ex_dk, **_tol(reduction))
    assert gb.shape == (0,)


def test_results_do_not_depend_on_the_live_thread_count():
    case = CASES[0]
    x, kernel, dy = _data(case, seed=1)
    before = numba.get_num_threads()
    try:
        runs = []
        for threads in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
            numba.set_num_threads(threads)
            runs.append(_both(case, x, kernel, dy, K.Workspace()))
    finally:
        numba.set_num_threads(before)
    for a, b in zip(runs[0], runs[-1]):
        np.testing.assert_array_equal(a, b)


def test_chunks_hold_whole_images_shared_evenly():
    slots = numba.config.NUMBA_NUM_THREADS
    for N, tiles in ((64, 36), (13, 36), (1, 36), (5, 256), (300, 4)):
        chunks = winograd_adjoint.chunk_count(N, tiles)
        assert 1 <= chunks <= N
        sizes = [(c + 1) * N // chunks - c * N // chunks for c in range(chunks)]
        assert sum(sizes) == N and max(sizes) - min(sizes) <= 1
        assert max(sizes) * tiles <= max(tiles, K.conv.winograd.WINO_TILES)
        assert chunks % slots == 0 or chunks == N  # fewer chunks than workers only when images run out


def test_the_planner_takes_it_where_the_input_has_more_tiles():
    seed = K.plan_conv((3, 3, 32, 64), input_hw=(13, 13), output_hw=(11, 11))
    assert seed.both_strategy is winograd_adjoint.WINOGRAD_ADJOINT
    assert "both gradients winograd_adjoint" in seed.describe()
    dilated = K.plan_conv((3, 3, 32, 32), dilation=(2, 2), input_hw=(24, 24), output_hw=(20, 20))
    assert dilated.both_strategy is winograd_adjoint.WINOGRAD_ADJOINT
    # "same" padding tiles the input and the output alike; unknown sizes; a map too big
    # for whole images in a chunk; 4x4 tiles taking a gradient; too few channels
    assert K.plan_conv((3, 3, 64, 64), pad=(1, 1), input_hw=(14, 14), output_hw=(14, 14)).both_strategy is None
    assert K.plan_conv((3, 3, 32, 64)).both_strategy is None
    assert K.plan_conv((3, 3, 32, 32), input_hw=(40, 40), output_hw=(38, 38)).both_strategy is None
    assert K.plan_conv((3, 3, 32, 32), input_hw=(30, 30), output_hw=(28, 28)).both_strategy is None
    assert K.plan_conv((3, 3, 8, 64), input_hw=(13, 13), output_hw=(11, 11)).both_strategy is None
    # training compiles the one pass instead of the two gradients' kernels
    kernels = seed.kernels(training=True, need_dx=True)
    assert winograd_adjoint._region in kernels and winograd_adjoint._chunk in kernels
    assert winograd_adjoint._region not in seed.kernels(training=True, need_dx=False)


def test_plan_backward_equals_the_two_gradients_apart():
    case = CASES[0]
    x, kernel, dy = _data(case, seed=2)
    plan = K.plan_conv((3, 3, 32, 64), input_hw=(13, 13), output_hw=(11, 11))
    apart = dataclasses.replace(plan, both_strategy=None)
    out = []
    for p in (plan, apart):
        dx, gk, gb = np.full_like(x, np.nan), np.full_like(kernel, np.nan), np.full(64, np.nan, np.float32)
        p.backward(x, dy, kernel, gk, gb, dx, ws=K.Workspace())
        out.append((dx, gk, gb))
    for a, b in zip(*out):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(np.abs(b).max()))
