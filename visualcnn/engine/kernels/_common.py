"""Compile options and small helpers shared by the kernel modules."""

import numpy as np

from visualcnn.engine import parallel as _parallel  # noqa: F401  (layer chosen first)

# fastmath without nnan/ninf: reductions may be re-associated (needed to vectorise
# them), but NaN/inf still propagate so a diverging model shows NaN loss honestly.
FAST = {"reassoc", "contract", "nsz", "arcp"}

NO_BIAS = np.zeros(0, dtype=np.float32)


def num_chunks(n_items, threads):
    """How many per-thread partial-sum slots to use for ``n_items`` work items."""
    return max(1, min(n_items, threads))


def check_f32c(name, a):
    if a.dtype != np.float32 or not a.flags.c_contiguous:
        raise TypeError(f"{name} must be a C-contiguous float32 array, got {a.dtype}"
                        f"{'' if a.flags.c_contiguous else ' (not C-contiguous)'}")
