"""Optimizer updates (Keras 3 formulas, keras/src/optimizers/{sgd,adam,rmsprop}.py), in
place on flat float32 arrays.

Why: each update is one read-modify-write pass over every parameter and its slots; for
the MLP's 535k parameters Adam touches 8.6 MB per step, which a single core streams
noticeably slower than two. Each kernel spreads blocks of ``BLOCK`` elements over the
workers (disjoint writes); its ``_serial`` form runs parameters too small to be worth
waking the workers (biases, BatchNormalization's gamma and beta). The arithmetic is
written exactly as the Keras update, in float32, and both forms run the same compiled
loop, so they give identical results.
"""

import math

import numpy as np
from numba import njit, prange

from visualcnn.engine.kernels import fnptr as _fnptr
from visualcnn.engine.kernels.fnptr import call_address

__all__ = ["BLOCK", "blocks", "sgd_update", "sgd_update_serial", "sgd_momentum_update",
           "sgd_momentum_update_serial", "adam_update", "adam_update_serial",
           "rmsprop_update", "rmsprop_update_serial", "PARALLEL_MIN"]

BLOCK = 4096
PARALLEL_MIN = 1 << 15  # elements; below this the update is done on the calling thread


# Each update is one plain loop over a flat range (``*_update_serial``, compiled once);
# the parallel ``*_update`` hands blocks of BLOCK elements of it to the workers, calling
# the same compiled loop through its address (``fnptr``) on slices: both give identical
# results, and the loop is compiled once instead of again inside a parallel twin. A
# block is a slice, so the loop index starts at 0 and LLVM can prove it non-negative
# (an index offset by the block start kept numba's negative-index wraparound in the loop
# and stopped it from being vectorised).
#
# No fastmath: the updates must be the Keras formulas bit for bit.
# error_model="numpy": IEEE division (no Python ZeroDivisionError check per element),
# which lets LLVM vectorise the sqrt and the division: Adam on 401k parameters went
# from 1.43 to 0.13 ms, with bit-identical results.


# Every update also (1) copies each parameter's old value into b: the model's backup for
# a step it has to take back, made in the pass that reads the value anyway (always: a
# branch on an optional backup doubled the loop's compile time); and (2) sets bad[0] to
# 1 when a new value is NaN or infinite (x - x is 0 only for a finite x; no fastmath, so
# it is not folded away), which catches a NaN or infinite gradient too, as every rule
# below carries one into the parameter. The model then needs no pass of its own over
# the gradients, the backup or the new weights (measured on the MLP benchmark network:
# 0.31 of a 0.94 ms step went to those passes, 0.12 to this one).


@njit(nogil=True, cache=True, error_model="numpy")
def sgd_update_serial(p, g, b, bad, lr):
    """p -= lr*g."""
    flag = np.int32(0)
    for i in range(p.shape[0]):
        b[i] = p[i]
        p[i] -= lr * g[i]
        flag |= np.int32(p[i] - p[i] != 0)
    bad[0] = flag


@njit(nogil=True, cache=True, error_model="numpy")
def sgd_momentum_update_serial(p, g, m, b, bad, lr, momentum, nesterov):
    """m = momentum*m - lr*g; p += m, or (nesterov) p += momentum*m - lr*g."""
    flag = np.int32(0)
    for i in range(p.shape[0]):
        b[i] = p[i]
        m[i] = momentum * m[i] - lr * g[i]
        if nesterov:
            p[i] += momentum * m[i] - lr * g[i]
        else:
            p[i] += m[i]
        flag |= np.int32(p[i] - p[i] != 0)
    bad[0] = flag


@njit(nogil=True, cache=True, error_model="numpy")
def adam_update_serial(p, g, m, v, b, bad, alpha, beta_1, beta_2, epsilon):
    """m += (g - m)(1 - b1); v += (g^2 - v)(1 - b2); p -= m*alpha/(sqrt(v) + eps), with
    alpha = lr*sqrt(1 - b2^t)/(1 - b1^t) computed by the caller."""
    one = np.float32(1.0)
    flag = np.int32(0)
    for i in range(p.shape[0]):
        b[i] = p[i]
        gi = g[i]
        m[i] += (gi - m[i]) * (one - beta_1)
        v[i] += (gi * gi - v[i]) * (one - beta_2)
        p[i] -= m[i] * alpha / (np.float32(math.sqrt(v[i])) + epsilon)
        flag |= np.int32(p[i] - p[i] != 0)
    bad[0] = flag


@njit(nogil=True, cache=True, error_model="numpy")
def rmsprop_update_serial(p, g, v, mom, b, bad, lr, rho, momentum, epsilon, use_momentum):
    """v = rho*v + (1 - rho)*g^2; inc = lr*g/sqrt(v + eps); mom = momentum*mom + inc and
    p -= mom when use_momentum, else p -= inc. mom is empty without momentum."""
    one = np.float32(1.0)
    flag = np.int32(0)
    for i in range(p.shape[0]):
        b[i] = p[i]
        gi = g[i]
        v[i] = rho * v[i] + (one - rho) * gi * gi
        inc = lr * gi / np.float32(math.sqrt(v[i] + epsilon))
        if use_momentum:
            mom[i] = momentum * mom[i] + inc
            p[i] -= mom[i]
        else:
            p[i] -= inc
        flag |= np.int32(p[i] - p[i] != 0)
    bad[0] = flag


@njit(parallel=True, nogil=True, cache=True)
def _blocks_1(fn, p, g, b, bad, a):
    n = p.shape[0]
    for k in prange((n + BLOCK - 1) // BLOCK):
        s, e = k * BLOCK, min(n, k * BLOCK + BLOCK)
        call_address(fn, p[s:e], g[s:e], b[s:e], bad[k:k + 1], a)


@njit(parallel=True, nogil=True, cache=True)
def _blocks_2(fn, p, g, m, b, bad, a, b_, c):
    n = p.shape[0]
    for k in prange((n + BLOCK - 1) // BLOCK):
        s, e = k * BLOCK, min(n, k * BLOCK + BLOCK)
        call_address(fn, p[s:e], g[s:e], m[s:e], b[s:e], bad[k:k + 1], a, b_, c)


@njit(parallel=True, nogil=True, cache=True)
def _blocks_3(fn, p, g, m, v, b, bad, a, b_, c, d):
    n = p.shape[0]
    for k in prange((n + BLOCK - 1) // BLOCK):
        s, e = k * BLOCK, min(n, k * BLOCK + BLOCK)
        call_address(fn, p[s:e], g[s:e], m[s:e], v[s:e], b[s:e], bad[k:k + 1], a, b_, c, d)


@njit(parallel=True, nogil=True, cache=True)
def _blocks_rmsprop(fn, p, g, v, mom, b, bad, a, b_, c, d, use_momentum):
    n = p.shape[0]
    for k in prange((n + BLOCK - 1) // BLOCK):
        s, e = k * BLOCK, min(n, k * BLOCK + BLOCK)
        if use_momentum:
            call_address(fn, p[s:e], g[s:e], v[s:e], mom[s:e], b[s:e], bad[k:k + 1], a, b_, c, d, True)
        else:  # mom is empty: any slice of it is
            call_address(fn, p[s:e], g[s:e], v[s:e], mom[0:0], b[s:e], bad[k:k + 1], a, b_, c, d, False)


def blocks(n):
    """How many blocks (flags) a parallel update of n elements has."""
    return (n + BLOCK - 1) // BLOCK


def _parallel(serial_kernel, region, slots, name):
    def update(p, g, *rest):
        # rest: the optimizer's slots, then b (backup) and bad (one flag per block), then scalars
        n = p.shape[0]
        example = [r[:n] for r in rest[:slots + 1]] + [rest[slots + 1][:1]]
        # the loop as the blocks call it: on slices (typed like the whole arrays)
        fn = _fnptr.address(serial_kernel, p[:n], g[:n], *example, *rest[slots + 2:])
        _fnptr.run(region, fn, p, g, *rest)

    update.__name__ = update.__qualname__ = name
    update.__doc__ = (f"``{serial_kernel.__name__}`` with blocks of BLOCK elements spread over the workers; bad "
                      "needs ``blocks(n)`` flags.")
    return update


sgd_update = _parallel(sgd_update_serial, _blocks_1, 0, "sgd_update")
sgd_momentum_update = _parallel(sgd_momentum_update_serial, _blocks_2, 1, "sgd_momentum_update")
adam_update = _parallel(adam_update_serial, _blocks_3, 2, "adam_update")
rmsprop_update = _parallel(rmsprop_update_serial, _blocks_rmsprop, 2, "rmsprop_update")
