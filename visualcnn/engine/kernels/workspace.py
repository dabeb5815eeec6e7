"""Scratch buffers the caller keeps between calls, so kernels never allocate per batch."""

import numba
import numpy as np

__all__ = ["Workspace"]


class Workspace:
    """Named, grow-only float32 scratch buffers.

    ``get(name, shape)`` returns a C-contiguous view of ``prod(shape)`` elements of a
    buffer that is reallocated only when a larger size is requested, so after the first
    batch no call allocates. One workspace per layer *and* per thread: the buffers are
    overwritten by every call, so two threads must never share one (the GUI predict path
    uses its own, or the serial direct kernels that need none).
    """

    def __init__(self, threads=None):
        self._buffers = {}
        self.threads = int(threads) if threads else numba.config.NUMBA_NUM_THREADS

    def get(self, name, shape, dtype=np.float32):
        size = 1
        for s in shape:
            size *= int(s)
        buf = self._buffers.get(name)
        if buf is None or buf.size < size or buf.dtype != dtype:
            buf = np.empty(max(size, 1), dtype=dtype)
            self._buffers[name] = buf
        return buf[:size].reshape(shape)

    def nbytes(self):
        return sum(b.nbytes for b in self._buffers.values())

    def clear(self):
        self._buffers.clear()
