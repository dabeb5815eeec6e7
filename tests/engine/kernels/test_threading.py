"""Parallel kernels called from two Python threads at once (training + GUI predict).

Under numba's workqueue layer this aborts the process, so the test runs the real thing
in this process (on the layer ``parallel`` chose) and the workqueue fallback in a
subprocess.
"""

import os
import subprocess
import sys
import textwrap
import threading

import numba
import numpy as np

from visualcnn.engine import kernels as K
from visualcnn.engine import parallel

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))


def test_threading_layer_is_threadsafe_when_available():
    assert parallel.THREADING_LAYER == numba.threading_layer()
    if parallel._layer_loads("tbb") or parallel._layer_loads("omp"):
        assert parallel.THREADING_LAYER in ("tbb", "omp")
        assert parallel.PARALLEL_IS_THREADSAFE
    else:
        assert parallel.use_serial()


def test_serial_inference_context_is_per_thread():
    seen = {}
    with parallel.serial_inference():
        assert parallel.use_serial()
        t = threading.Thread(target=lambda: seen.setdefault("other", parallel.use_serial()))
        t.start()
        t.join()
    assert seen["other"] is (not parallel.PARALLEL_IS_THREADSAFE)
    assert parallel.use_serial() is (not parallel.PARALLEL_IS_THREADSAFE)


def _seed_step(x, w1, b1, w2, b2, ws, serial):
    n = x.shape[0]
    a1 = np.empty((n, 26, 26, 32), np.float32)
    K.conv2d_forward(x, w1, b1, a1, relu=True, ws=ws, serial=serial)
    p1 = np.empty((n, 13, 13, 32), np.float32)
    i1 = np.empty(p1.shape, np.int32)
    (K.maxpool2d_forward_serial if serial else K.maxpool2d_forward)(a1, p1, i1, 2, 2, 2, 2,
                                                                   0, 0)
    a2 = np.empty((n, 11, 11, 64), np.float32)
    K.conv2d_forward(p1, w2, b2, a2, relu=True, ws=ws, serial=serial)
    return a2


def test_two_threads_call_parallel_kernels_concurrently():
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((3, 3, 1, 32)).astype(np.float32) * 0.3
    w2 = rng.standard_normal((3, 3, 32, 64)).astype(np.float32) * 0.1
    b1 = rng.standard_normal(32).astype(np.float32)
    b2 = rng.standard_normal(64).astype(np.float32)
    xs = [rng.standard_normal((n, 28, 28, 1)).astype(np.float32) for n in (16, 1)]
    # expected results computed single-threaded first
    expected = [_seed_step(x, w1, b1, w2, b2, K.Workspace(), serial=True) for x in xs]
    dy = rng.standard_normal((16, 11, 11, 64)).astype(np.float32)
    p_ref = np.empty((16, 13, 13, 32), np.float32)
    gk_ref = np.empty_like(w2)
    barrier = threading.Barrier(2)
    errors = []
    # the "GUI" thread uses parallel kernels too when the layer allows it
    gui_serial = not parallel.PARALLEL_IS_THREADSAFE

    def trainer():
        try:
            ws = K.Workspace()
            barrier.wait()
            for _ in range(40):
                got = _seed_step(xs[0], w1, b1, w2, b2, ws, serial=False)
                np.testing.assert_allclose(got, expected[0], rtol=1e-4, atol=1e-4)
                gk = np.empty_like(w2)
                K.conv2d_backward_kernel(p_ref, dy, gk, None, ws=ws)
                K.conv2d_backward_kernel_direct(p_ref, dy, gk_ref,
                                                np.empty((2,) + w2.shape, np.float32),
                                                1, 1, 1, 1, 0, 0)
                np.testing.assert_allclose(gk, gk_ref, rtol=1e-3, atol=1e-2)
        except Exception as e:  # surfaced in the main thread
            errors.append(e)

    def gui():
        try:
            ws = K.Workspace()
            barrier.wait()
            for _ in range(200):
                got = _seed_step(xs[1], w1, b1, w2, b2, ws, serial=gui_serial)
                np.testing.assert_allclose(got, expected[1], rtol=1e-4, atol=1e-4)
        except Exception as e:
            errors.append(e)

    # fill p_ref in the main thread (parallel kernels) before the race starts
    a1 = np.empty((16, 26, 26, 32), np.float32)
    K.conv2d_forward_direct(xs[0], w1, b1, a1, 1, 1, 1, 1, 0, 0, True)
    K.maxpool2d_forward(a1, p_ref, np.empty(p_ref.shape, np.int32), 2, 2, 2, 2, 0, 0)
    threads = [threading.Thread(target=trainer), threading.Thread(target=gui)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors


def test_workqueue_fallback_makes_inference_serial():
    code = textwrap.dedent("""
        import threading, numpy as np
        from visualcnn.engine import parallel
        from visualcnn.engine import kernels as K
        assert parallel.THREADING_LAYER == "workqueue", parallel.THREADING_LAYER
        assert not parallel.PARALLEL_IS_THREADSAFE and parallel.use_serial()
        x = np.random.default_rng(0).standard_normal((8, 13, 13, 32)).astype(np.float32)
        w = np.ones((3, 3, 32, 64), np.float32)
        ref = np.empty((8, 11, 11, 64), np.float32)
        K.conv2d_forward_direct_serial(x, w, K.NO_BIAS, ref, 1, 1, 1, 1, 0, 0, False)
        bad = []
        def train():   # parallel kernels, explicit serial=False
            out = np.empty_like(ref)
            for _ in range(30):
                K.conv2d_forward(x, w, None, out, serial=False)
                if not np.allclose(out, ref, atol=1e-3): bad.append("train")
        def predict():  # serial=None -> serial under workqueue
            out = np.empty_like(ref)
            for _ in range(30):
                K.conv2d_forward(x, w, None, out)
                if not np.allclose(out, ref, atol=1e-3): bad.append("predict")
        ts = [threading.Thread(target=train), threading.Thread(target=predict)]
        [t.start() for t in ts]; [t.join() for t in ts]
        assert not bad, bad
        print("OK")
    """)
    env = dict(os.environ, VISUALCNN_THREADING_LAYER="workqueue")
    res = subprocess.run([sys.executable, "-c", code], cwd=_ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "OK" in res.stdout, res.stderr[-2000:]


def _in_thread(fn):
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("v", fn()))
    t.start()
    t.join()
    return out["v"]


def test_training_threads_flush_denormals_and_others_do_not():
    if not parallel._X86:
        assert parallel.flush_denormals(True) is False
        return
    tiny = np.full(4, 1e-39, np.float32)  # subnormal float32

    def train_thread():
        parallel.apply_thread_settings()
        return parallel.denormals_flushed(), float((tiny * np.float32(0.5))[0])

    before = parallel.denormals_flushed()
    flushed, value = _in_thread(train_thread)
    assert flushed and value == 0.0
    assert parallel.denormals_flushed() == before  # MXCSR is per thread

    def ieee_thread():  # (new threads inherit their creator's setting, so reset it)
        parallel.flush_denormals(False)
        return float((tiny * np.float32(0.5))[0])

    assert _in_thread(ieee_thread) == np.float32(5e-40)
    parallel.set_flush_denormals(False)
    try:
        assert _in_thread(lambda: (parallel.apply_thread_settings(),
                                   parallel.denormals_flushed())[1]) is False
    finally:
        parallel.set_flush_denormals(True)
    # flush_denormals toggles the calling thread and can be undone
    def toggle():
        on = parallel.flush_denormals(True) and parallel.denormals_flushed()
        parallel.flush_denormals(False)
        return on, parallel.denormals_flushed()
    assert _in_thread(toggle) == (True, False)
