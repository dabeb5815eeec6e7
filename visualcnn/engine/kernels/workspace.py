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

    # views handed out, by (name, shape, dtype): a single-image predict asks for about 20
    # buffers, and building each view again cost ~10 % of its latency. Dropped for a name
    # when its buffer is reallocated (so no view keeps an outgrown buffer alive), and all
    # of them past MAX_VIEWS (many batch sizes).
    MAX_VIEWS = 256

    def __init__(self, threads=None):
        self._buffers = {}
        self._views = {}
        self.threads = int(threads) if threads else numba.config.NUMBA_NUM_THREADS

    def get(self, name, shape, dtype=np.float32):
        key = (name, tuple(shape), dtype)
        view = self._views.get(key)
        if view is not None:
            return view
        size = 1
        for s in shape:
            size *= int(s)
        buf = self._buffers.get(name)
        if buf is None or buf.size < size or buf.dtype != dtype:
            buf = np.empty(max(size, 1), dtype=dtype)
            self._buffers[name] = buf
            for k in [k for k in self._views if k[0] == name]:
                del self._views[k]
        if len(self._views) >= self.MAX_VIEWS:
            self._views.clear()
        view = buf[:size].reshape(shape)
        self._views[key] = view
        return view

    def nbytes(self):
        return sum(b.nbytes for b in self._buffers.values())

    def clear(self):
        self._buffers.clear()
        self._views.clear()
