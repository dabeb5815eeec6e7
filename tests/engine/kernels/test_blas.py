"""The kernels' own OpenBLAS: a correct sgemm, its core chosen for the processor even where
OPENBLAS_CORETYPE pins numpy's, our own pin honoured, and the environment left as it was."""

import json
import os
import platform
import subprocess
import sys

import numpy as np
import pytest

from visualcnn.engine.kernels import blas

needs_own = pytest.mark.skipif(blas.SOURCE != "scipy-openblas32",
                               reason="the kernels' own OpenBLAS (scipy-openblas32) is not installed")
x86 = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                         reason="OpenBLAS core names here are x86 ones")

_PROBE = """
import json, os
from visualcnn.engine.kernels import blas
print(json.dumps({"core": blas.CORE, "source": blas.SOURCE,
                  "coretype": os.environ.get("OPENBLAS_CORETYPE"),
                  "threads": os.environ.get("OPENBLAS_NUM_THREADS")}))
"""


def _probe(**env_changes):
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_CORETYPE", "VISUALCNN_BLAS_CORETYPE", "OPENBLAS_NUM_THREADS",
                        "VISUALCNN_NO_KERNEL_BLAS")}
    env.update(env_changes)
    done = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not blas.available(), reason="no sgemm symbol found")
@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (False, True), (True, False)])
def test_sgemm_matches_numpy(trans_a, trans_b):
    rng = np.random.default_rng(3)
    m, n, k = 37, 29, 53
    a = rng.standard_normal((k, m) if trans_a else (m, k), dtype=np.float32)
    b = rng.standard_normal((n, k) if trans_b else (k, n), dtype=np.float32)
    c = np.full((m, n), 7.0, np.float32)  # beta = 1 adds to what is there
    blas.ensure_single_threaded()
    blas.SGEMM(blas.ROW_MAJOR, blas.TRANS if trans_a else blas.NO_TRANS,
               blas.TRANS if trans_b else blas.NO_TRANS, m, n, k, 0.5, a.ctypes.data, a.shape[1],
               b.ctypes.data, b.shape[1], 1.0, c.ctypes.data, n)
    expected = 7.0 + 0.5 * ((a.T if trans_a else a).astype(np.float64) @ (b.T if trans_b else b))
    np.testing.assert_allclose(c, expected, rtol=1e-4, atol=1e-4)


@needs_own
@x86
def test_numpy_core_pin_does_not_reach_the_kernels():
    """Nehalem (SSE4.2) is older than any processor CI runs on: pinned for numpy, it must not
    become the kernels' core; the kernels' core is the one OpenBLAS detects without a pin."""
    detected = _probe()
    pinned = _probe(OPENBLAS_CORETYPE="Nehalem")
    assert pinned["core"] == detected["core"] != "Nehalem"
    assert pinned["coretype"] == "Nehalem"  # numpy's setting is left as it was given
    assert pinned["threads"] is None and detected["threads"] is None


@needs_own
@x86
def test_our_own_core_pin_is_honoured():
    pinned = _probe(OPENBLAS_CORETYPE="Haswell", VISUALCNN_BLAS_CORETYPE="Nehalem",
                    OPENBLAS_NUM_THREADS="2")
    assert pinned["core"] == "Nehalem"
    assert pinned["coretype"] == "Haswell" and pinned["threads"] == "2"


def test_switching_the_kernel_blas_off():
    probe = _probe(VISUALCNN_NO_KERNEL_BLAS="1")
    assert probe["source"] is None and probe["core"] is None


def _thread_counts():
    """{path: thread count} of every other OpenBLAS loaded in this process."""
    import ctypes

    counts = {}
    for path in blas._shared_blas_paths():
        lib = ctypes.CDLL(path)
        for name in ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
                     "openblas_get_num_threads64_", "openblas_get_num_threads"):
            getter = getattr(lib, name, None)
            if getter is not None:
                getter.restype = ctypes.c_int
                counts[path] = getter()
                break
    return counts


def test_training_limits_every_other_openblas_in_the_process():
    """numpy's pool must be the one limited even when scipy's OpenBLAS is loaded too: a
    small np.matmul per step on an unlimited pool kept its thread spinning beside the
    numba workers."""
    pytest.importorskip("scipy.linalg")  # a second OpenBLAS in the process, as openTSNE loads it
    from visualcnn.engine.training import limit_blas_threads

    before = _thread_counts()
    if len(before) < 2:
        pytest.skip("only one other OpenBLAS is loaded here")
    try:
        assert limit_blas_threads(2)
        assert set(_thread_counts().values()) == {2}
        assert limit_blas_threads(1)
        assert set(_thread_counts().values()) == {1}
    finally:
        limit_blas_threads(1)


_PREDICT_PROBE = """
import json, os
import numpy as np  # first, as a user's script does
from visualcnn.engine import Sequential, layers as L
from visualcnn.engine.kernels import blas

def counts():
    import ctypes
    out = []
    for path in blas._shared_blas_paths():
        lib = ctypes.CDLL(path)
        for name in ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
                     "openblas_get_num_threads64_", "openblas_get_num_threads"):
            if hasattr(lib, name):
                getattr(lib, name).restype = ctypes.c_int
                out.append([path, getattr(lib, name)()])
                break
    return out

before = counts()
m = Sequential([L.Input(shape=(8, 8, 1)), L.Conv2D(4, 3, activation="relu"), L.Flatten(),
                L.Dense(3, activation="softmax")], seed=0)
m.predict(np.zeros((2, 8, 8, 1), np.float32))
print(json.dumps({"before": before, "after": counts()}))
"""


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="OpenBLAS starts with one thread on one core")
def test_predicting_before_any_training_takes_numpy_blas_off_its_thread_pool():
    """A first predict, no training yet: numpy's OpenBLAS left on its pool ran the seed
    CNN's batch of 1000 at 21,800 instead of 49,900 images/s."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    done = subprocess.run([sys.executable, "-c", _PREDICT_PROBE], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    numpy_before = [count for path, count in probe["before"] if "numpy" in path]
    numpy_after = [count for path, count in probe["after"] if "numpy" in path]
    if not numpy_before:
        pytest.skip("numpy's OpenBLAS is not one of numpy's own libraries here")
    assert max(numpy_before) > 1
    # numpy's (what np.matmul runs on); numba loads scipy's at its first compile, unused
    assert numpy_after and set(numpy_after) == {1}


@needs_own
@x86
def test_an_unknown_core_name_is_reported():
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "VISUALCNN_NO_KERNEL_BLAS")}
    env["VISUALCNN_BLAS_CORETYPE"] = "NoSuchCore"
    done = subprocess.run([sys.executable, "-W", "always", "-c",
                           "from visualcnn.engine.kernels import blas; print(blas.describe())"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "VISUALCNN_BLAS_CORETYPE='NoSuchCore' was not used" in done.stderr
    assert "it chose" in done.stderr and "Traceback" not in done.stderr
