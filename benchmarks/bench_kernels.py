"""Time the numba kernels on the seed CNN's layers (and torch, if importable).

    python benchmarks/bench_kernels.py [--threads 2] [--rounds 15]

Seed CNN: 28x28x1 -> Conv2D 32 3x3 relu -> MaxPool 2 -> Conv2D 64 3x3 relu -> MaxPool 2
-> Flatten -> Dense 64 relu -> Dense 10. Each op is timed after a warm-up (JIT compile
excluded); ours and torch's (torch.set_num_threads(n), NCHW as a torch model would run)
alternate round by round in the same process, so both see the same machine state.
Reported: median milliseconds per call and ratio = torch / ours (> 1: we are faster).

The conv GEMMs call numpy's OpenBLAS single-threaded from inside one numba parallel
region (``visualcnn.engine.kernels.blas``), so its thread pool is not used by them.
OpenBLAS (numpy's BLAS, used for the GEMM fallback) keeps its worker threads spinning for
~2**28 cycles after each call; on 2 cores they steal the CPU from the numba kernels that
follow. OPENBLAS_THREAD_TIMEOUT=4 (read when numpy loads OpenBLAS, so it must be set
before ``import numpy``) makes them sleep at once; this script sets it unless
``--openblas-default`` is given. The app entry point should do the same
(``visualcnn.engine.parallel.OPENBLAS_ENV``).
"""

import argparse
import os
import sys
import time

if "--openblas-default" not in sys.argv:
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from visualcnn.engine import kernels as K  # noqa: E402
from visualcnn.engine import parallel  # noqa: E402

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # torch is only a reference, never a dependency
    torch = None


WARM = 2


def _timeit(fn, reps, warm=0):
    for _ in range(warm):
        fn()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def bench_pair(ours, theirs, rounds, reps):
    ours()
    ours()
    if theirs is not None:
        theirs()
        theirs()
    a, b = [], []
    for _ in range(rounds):
        # untimed warm-up calls after each switch: the other library's pool threads
        # (OpenMP / OpenBLAS spin-wait) settle before the timed calls
        a.append(_timeit(ours, reps, WARM))
        if theirs is not None:
            b.append(_timeit(theirs, reps, WARM))
    return np.median(a) * 1e3, (np.median(b) * 1e3 if b else None)


class SeedKernels:
    """Our side: preallocated buffers and workspaces for one batch size."""

    def __init__(self, n, rng):
        self.n = n
        f = np.float32
        self.x = rng.random((n, 28, 28, 1), dtype=f)
        self.w1 = (rng.standard_normal((3, 3, 1, 32)) * 0.3).astype(f)
        self.b1 = (rng.standard_normal(32) * 0.1).astype(f)
        self.w2 = (rng.standard_normal((3, 3, 32, 64)) * 0.06).astype(f)
        self.b2 = (rng.standard_normal(64) * 0.1).astype(f)
        self.wd1 = (rng.standard_normal((1600, 64)) * 0.03).astype(f)
        self.bd1 = np.zeros(64, f)
        self.wd2 = (rng.standard_normal((64, 10)) * 0.1).astype(f)
        self.a1 = np.empty((n, 26, 26, 32), f)
        self.p1 = np.empty((n, 13, 13, 32), f)
        self.i1 = np.empty((n, 13, 13, 32), np.int32)
        self.a2 = np.empty((n, 11, 11, 64), f)
        self.p2 = np.empty((n, 5, 5, 64), f)
        self.i2 = np.empty((n, 5, 5, 64), np.int32)
        self.h = np.empty((n, 64), f)
        self.logits = np.empty((n, 10), f)
        self.da2 = rng.standard_normal(self.a2.shape).astype(f)
        self.da1 = rng.standard_normal(self.a1.shape).astype(f)
        self.dp1 = rng.standard_normal(self.p1.shape).astype(f)
        self.dp2 = rng.standard_normal(self.p2.shape).astype(f)
        self.gw1, self.gb1 = np.empty_like(self.w1), np.empty_like(self.b1)
        self.gw2, self.gb2 = np.empty_like(self.w2), np.empty_like(self.b2)
        self.ws1, self.ws2 = K.Workspace(), K.Workspace()
        self.conv1_fwd()
        self.pool1_fwd()
        self.conv2_fwd()
        self.pool2_fwd()

    def conv1_fwd(self, serial=False):
        K.conv2d_forward(self.x, self.w1, self.b1, self.a1, relu=True, ws=self.ws1,
                         serial=serial)

    def conv1_bwd_w(self):
        K.conv2d_backward_kernel(self.x, self.da1, self.gw1, self.gb1, ws=self.ws1)

    def pool1_fwd(self, serial=False):
        (K.maxpool2d_forward_serial if serial else K.maxpool2d_forward)(
            self.a1, self.p1, self.i1, 2, 2, 2, 2, 0, 0)

    def pool1_bwd(self):
        K.maxpool2d_backward(self.dp1, self.i1, self.da1)

    def conv2_fwd(self, serial=False):
        return K.conv2d_forward(self.p1, self.w2, self.b2, self.a2, relu=True, ws=self.ws2,
                                serial=serial)

    def conv2_bwd_in(self):
        K.conv2d_backward_input(self.da2, self.w2, self.dp1, ws=self.ws2)

    def conv2_bwd_w(self):
        K.conv2d_backward_kernel(self.p1, self.da2, self.gw2, self.gb2, ws=self.ws2)

    def pool2_fwd(self, serial=False):
        (K.maxpool2d_forward_serial if serial else K.maxpool2d_forward)(
            self.a2, self.p2, self.i2, 2, 2, 2, 2, 0, 0)

    def pool2_bwd(self):
        K.maxpool2d_backward(self.dp2, self.i2, self.da2)

    def predict(self, serial):
        """The whole seed CNN forward (dense layers via numpy matmul)."""
        self.conv1_fwd(serial)
        self.pool1_fwd(serial)
        self.conv2_fwd(serial)
        self.pool2_fwd(serial)
        np.matmul(self.p2.reshape(self.n, 1600), self.wd1, out=self.h)
        self.h += self.bd1
        np.maximum(self.h, 0, out=self.h)
        np.matmul(self.h, self.wd2, out=self.logits)
        return self.logits

    def conv_stack_train(self):
        """Forward + backward of conv1, pool1, conv2, pool2 (no input grad for conv1)."""
        self.conv1_fwd()
        self.pool1_fwd()
        self.conv2_fwd()
        self.pool2_fwd()
        self.pool2_bwd()
        K.relu_backward(self.a2.reshape(-1), self.da2.reshape(-1), self.da2.reshape(-1))
        self.conv2_bwd_w()
        self.conv2_bwd_in()
        K.maxpool2d_backward(self.dp1, self.i1, self.da1)
        K.relu_backward(self.a1.reshape(-1), self.da1.reshape(-1), self.da1.reshape(-1))
        self.conv1_bwd_w()


class SeedTorch:
    def __init__(self, ours):
        t = torch.from_numpy
        self.x = t(ours.x).permute(0, 3, 1, 2).contiguous()
        self.w1 = t(ours.w1).permute(3, 2, 0, 1).contiguous()
        self.b1 = t(ours.b1)
        self.w2 = t(ours.w2).permute(3, 2, 0, 1).contiguous()
        self.b2 = t(ours.b2)
        self.wd1 = t(ours.wd1.T.copy())
        self.bd1 = t(ours.bd1)
        self.wd2 = t(ours.wd2.T.copy())
        self.a1 = torch.relu(F.conv2d(self.x, self.w1, self.b1))
        self.p1, self.i1 = F.max_pool2d(self.a1, 2, return_indices=True)
        self.a2 = torch.relu(F.conv2d(self.p1, self.w2, self.b2))
        self.p2, self.i2 = F.max_pool2d(self.a2, 2, return_indices=True)
        self.da1 = torch.randn_like(self.a1)
        self.da2 = torch.randn_like(self.a2)
        self.dp2 = torch.randn_like(self.p2)
        self.dp1 = torch.randn_like(self.p1)
        from torch.nn import grad as tg
        self.tg = tg

    def conv1_fwd(self):
        return torch.relu(F.conv2d(self.x, self.w1, self.b1))

    def conv1_bwd_w(self):
        return (self.tg.conv2d_weight(self.x, self.w1.shape, self.da1),
                self.da1.sum((0, 2, 3)))

    def pool1_fwd(self):
        return F.max_pool2d(self.a1, 2, return_indices=True)

    def pool1_bwd(self):
        return torch.ops.aten.max_pool2d_with_indices_backward(
            self.dp1, self.a1, [2, 2], [2, 2], [0, 0], [1, 1], False, self.i1)

    def conv2_fwd(self):
        return torch.relu(F.conv2d(self.p1, self.w2, self.b2))

    def conv2_bwd_in(self):
        return self.tg.conv2d_input(self.p1.shape, self.w2, self.da2)

    def conv2_bwd_w(self):
        return (self.tg.conv2d_weight(self.p1, self.w2.shape, self.da2),
                self.da2.sum((0, 2, 3)))

    def pool2_fwd(self):
        return F.max_pool2d(self.a2, 2, return_indices=True)

    def pool2_bwd(self):
        return torch.ops.aten.max_pool2d_with_indices_backward(
            self.dp2, self.a2, [2, 2], [2, 2], [0, 0], [1, 1], False, self.i2)

    def predict(self):
        with torch.no_grad():
            a = F.max_pool2d(torch.relu(F.conv2d(self.x, self.w1, self.b1)), 2)
            a = F.max_pool2d(torch.relu(F.conv2d(a, self.w2, self.b2)), 2)
            a = a.permute(0, 2, 3, 1).reshape(a.shape[0], -1)
            return torch.relu(a @ self.wd1.T + self.bd1) @ self.wd2.T

    def conv_stack_train(self):
        w1 = self.w1.detach().requires_grad_()
        b1 = self.b1.detach().requires_grad_()
        w2 = self.w2.detach().requires_grad_()
        b2 = self.b2.detach().requires_grad_()
        a = F.max_pool2d(torch.relu(F.conv2d(self.x, w1, b1)), 2)
        a = F.max_pool2d(torch.relu(F.conv2d(a, w2, b2)), 2)
        a.backward(self.dp2)


FIRST_CONVS = [  # name, input (H, W, C), kernel (KH, KW, C, CO), pad
    ("seed conv1", (28, 28, 1), (3, 3, 1, 32), (0, 0)),
    ("cifar conv1", (32, 32, 3), (3, 3, 3, 32), (0, 0)),
    ("lenet conv1", (28, 28, 1), (5, 5, 1, 6), (2, 2)),
    ("seed conv2", (13, 13, 32), (3, 3, 32, 64), (0, 0)),
    ("wide 28x28x32 same", (28, 28, 32), (3, 3, 32, 32), (1, 1)),
]


def first_convs(row, rng, n):
    """Every strategy that can run a conv (forward + relu, and the weight gradient),
    against the planner's choice and torch: the measurements behind the order in
    kernels/conv/planner.py."""
    print(f"\nconv strategies, batch {n}: forward / weight gradient")
    for name, (h, w, c), kshape, pad in FIRST_CONVS:
        x = rng.random((n, h, w, c), dtype=np.float32)
        k = (rng.standard_normal(kshape) * 0.2).astype(np.float32)
        b = np.zeros(kshape[3], np.float32)
        oh, ow = h + 2 * pad[0] - kshape[0] + 1, w + 2 * pad[1] - kshape[1] + 1
        out = np.empty((n, oh, ow, kshape[3]), np.float32)
        dy = rng.standard_normal(out.shape).astype(np.float32)
        gk, gb = np.empty_like(k), np.empty_like(b)
        tfwd = tbwd = None
        if torch is not None:
            tx = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
            tk = torch.from_numpy(k).permute(3, 2, 0, 1).contiguous()
            tb = torch.from_numpy(b)
            tdy = torch.from_numpy(dy).permute(0, 3, 1, 2).contiguous()
            from torch.nn import grad as tg

            def tfwd():
                return torch.relu(F.conv2d(tx, tk, tb, padding=pad))

            def tbwd():
                return tg.conv2d_weight(tx, tk.shape, tdy, padding=pad), tdy.sum((0, 2, 3))
        names = [None, "direct", "few_channel_3x3", "single_channel_plane", "winograd", "winograd4"]
        names += ["im2col_sgemm"] if K.blas.available() else ["im2col_matmul"]
        for force in names:
            try:
                plan = K.plan_conv(kshape, pad=pad, force=force)
            except ValueError:
                continue
            if force == "few_channel_3x3" and kshape[:2] != (3, 3):
                continue
            if force == "single_channel_plane" and (c != 1 or kshape[:2] == (3, 3)):
                continue
            if force in ("few_channel_3x3", "winograd", "winograd4") and (c > 4) != force.startswith("winograd"):
                continue
            ws = K.Workspace()
            label = force or f"planner: {plan.forward_strategy.name}"
            row(f"{name} fwd {label}"[:34], lambda: plan.forward(x, k, b, out, relu=True, ws=ws,
                                                                  serial=False), tfwd)
            row(f"{name} dW {label}"[:34], lambda: plan.backward_kernel(x, dy, gk, gb, ws=ws), tbwd)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--openblas-default", action="store_true",
                    help="leave OPENBLAS_THREAD_TIMEOUT unset (OpenBLAS spin-waits)")
    args = ap.parse_args()
    parallel.set_num_threads(args.threads)
    if torch is not None:
        torch.set_num_threads(args.threads)
    print(f"numba threading layer: {parallel.THREADING_LAYER}, threads: "
          f"{parallel.get_num_threads()}, torch: "
          f"{torch.__version__ if torch is not None else 'not installed'}, "
          f"OPENBLAS_THREAD_TIMEOUT={os.environ.get('OPENBLAS_THREAD_TIMEOUT', 'unset')}")
    rng = np.random.default_rng(0)
    header = f"{'op':34s} {'ours ms':>9s} {'torch ms':>9s} {'torch/ours':>10s}"

    def row(name, ours, theirs, rounds=args.rounds, reps=5, per_image=None):
        a, b = bench_pair(ours, theirs, rounds, reps)
        line = f"{name:34s} {a:9.3f} "
        line += f"{b:9.3f} {b / a:10.2f}" if b is not None else f"{'-':>9s} {'-':>10s}"
        if per_image:
            line += f"   ours {per_image / a * 1e3:8.0f} img/s"
            if b is not None:
                line += f", torch {per_image / b * 1e3:8.0f} img/s"
        print(line, flush=True)

    for n in (64,):
        ours = SeedKernels(n, rng)
        th = SeedTorch(ours) if torch is not None else None
        g = (lambda name: getattr(th, name)) if th is not None else (lambda name: None)
        print(f"\nbatch {n}\n{header}")
        row("conv1 fwd (28x28x1->32, +b, relu)", ours.conv1_fwd, g("conv1_fwd"))
        row("conv1 bwd weights+bias", ours.conv1_bwd_w, g("conv1_bwd_w"))
        row("pool1 fwd (26->13, C32)", ours.pool1_fwd, g("pool1_fwd"))
        row("pool1 bwd", ours.pool1_bwd, g("pool1_bwd"))
        row("conv2 fwd (13x13x32->64, +b, relu)", ours.conv2_fwd, g("conv2_fwd"))
        row("conv2 bwd input", ours.conv2_bwd_in, g("conv2_bwd_in"))
        row("conv2 bwd weights+bias (im2col)", ours.conv2_bwd_w, g("conv2_bwd_w"))
        row("pool2 fwd (11->5, C64)", ours.pool2_fwd, g("pool2_fwd"))
        row("pool2 bwd", ours.pool2_bwd, g("pool2_bwd"))
        row("conv stack fwd+bwd (train step)", ours.conv_stack_train,
            g("conv_stack_train"), per_image=n)
        row("seed CNN predict", lambda: ours.predict(False), g("predict"), per_image=n)

    first_convs(row, rng, 64)

    n = 1000
    ours = SeedKernels(n, rng)
    th = SeedTorch(ours) if torch is not None else None
    g = (lambda name: getattr(th, name)) if th is not None else (lambda name: None)
    print(f"\nbatch {n} (forward)\n{header}")
    row("conv1 fwd", ours.conv1_fwd, g("conv1_fwd"), rounds=5, reps=2)
    row("pool1 fwd", ours.pool1_fwd, g("pool1_fwd"), rounds=5, reps=2)
    row("conv2 fwd", ours.conv2_fwd, g("conv2_fwd"), rounds=5, reps=2)
    row("pool2 fwd", ours.pool2_fwd, g("pool2_fwd"), rounds=5, reps=2)
    row("seed CNN predict", lambda: ours.predict(False), g("predict"), rounds=5, reps=2,
        per_image=n)

    one = SeedKernels(1, rng)
    th1 = SeedTorch(one) if torch is not None else None
    print(f"\nbatch 1 (GUI predict)\n{header}")
    with parallel.serial_inference():
        row("seed CNN predict, serial kernels", lambda: one.predict(None),
            th1.predict if th1 is not None else None, rounds=21, reps=50, per_image=1)
    row("seed CNN predict, parallel kernels", lambda: one.predict(False),
        th1.predict if th1 is not None else None, rounds=21, reps=50, per_image=1)


if __name__ == "__main__":
    main()
