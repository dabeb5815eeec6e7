"""The learned space (issue 13 item 5): a 2-D map of one layer's activations for many test
images, by PCA or t-SNE, so a student sees the classes pull apart as the network trains.

    from visualcnn.engine.explain import embed
    m = embed(model, x_test[:2000], y_test[:2000], "dense", method="tsne", seed=0)
    m.coords        # (N, 2), one point per image; m.labels, m.indices
    m.place(digit)  # where a new image (the drawn digit) lands on the finished map

PCA is our own (numpy's SVD, or numpy's eigh of the smaller Gram matrix for wide layers; not
scikit-learn's): exact, deterministic (each axis's sign is fixed so its largest loading is
positive), and the same projection places new points; the randomised solver scikit-learn
picks for wide layers would move the map from run to run.
t-SNE is openTSNE's (seeded, one thread: the same seed gives the same map; in a child
process for the window, explain/tsne_process.py), after PCA to
50 dimensions as usual; a new point is put on the finished map by openTSNE's own
TSNEEmbedding.transform, which optimises the new point only against the fixed map.

Never imports Qt. progress(done, total) and cancel (a threading.Event or a function
returning True) as the other explanation functions: a cancelled map returns None.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .gradients import cancelled as _cancelled, find_layer, images
from .tsne_process import TsneProcess, fit_tsne

PCA, TSNE = "pca", "tsne"
METHODS = (PCA, TSNE)
DEFAULT_IMAGES = 2000
TSNE_PCA_DIMS = 50  # t-SNE starts from the first 50 principal components (the usual preprocessing)
TSNE_EARLY, TSNE_ITER = 250, 500  # openTSNE's defaults: early exaggeration, then the main phase
CALLBACK_EVERY = 10  # t-SNE iterations between progress reports / cancel checks
BATCH = 100  # images per forward pass while collecting activations
SMALL_PCA = 256  # up to this many rows or columns PCA is one exact SVD
FEATURE_COPIES = 3  # the activations, their centred copy, and the SVD's work arrays


@dataclass
class Projection:
    """A linear map features -> k dims: (features - mean) @ components.T."""

    mean: np.ndarray
    components: np.ndarray  # (k, D), orthonormal rows

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return (np.asarray(features, np.float64) - self.mean) @ self.components.T


def pca(features: np.ndarray, k: int) -> tuple[np.ndarray, Projection]:
    """The first k principal-component coordinates of the rows of features, and the projection
    that gives them (for new rows). Each component's sign: its largest-magnitude loading positive.

    Small data: numpy's SVD. Large (both sides over SMALL_PCA): the top k eigenvectors of the
    smaller Gram matrix (numpy's eigh): measured on 2,000 conv outputs of 7,744 values on
    this loaded machine, 20-35 s for the full SVD against about 4 s; the same components.
    Both release the interpreter lock, so a window's thread can run them."""
    x = np.asarray(features, np.float64)
    mean = x.mean(axis=0)
    centred = x - mean
    n, d = centred.shape
    k = max(1, min(int(k), n, d))
    if min(n, d) <= SMALL_PCA:
        components = np.linalg.svd(centred, full_matrices=False)[2][:k]
    else:  # numpy's eigh, not scipy's: scipy's held the interpreter lock for 1.6 s (measured), a frozen window
        if d <= n:
            components = np.linalg.eigh(centred.T @ centred)[1][:, ::-1][:, :k].T
        else:
            values, vectors = np.linalg.eigh(centred @ centred.T)
            values, vectors = values[::-1][:k], vectors[:, ::-1][:, :k]
            scale = np.sqrt(np.maximum(values, 0.0))
            keep = scale > scale.max() * 1e-7  # directions with no spread (fewer ranks than k) stay zero
            components = np.zeros((k, d))
            components[keep] = (centred.T @ vectors[:, keep] / scale[keep]).T
    components = np.ascontiguousarray(components)
    signs = np.sign(components[np.arange(k), np.abs(components).argmax(axis=1)])
    components = components * np.where(signs == 0, 1.0, signs)[:, None]
    projection = Projection(mean=mean, components=components)
    return centred @ components.T, projection


@dataclass
class Embedding:
    """A finished map: coords (N, 2) of the images indices (into the data given) with labels."""

    method: str
    layer: str
    coords: np.ndarray
    labels: np.ndarray
    indices: np.ndarray
    seconds: float
    features_shape: tuple
    model: object = field(repr=False, default=None)
    projection: Projection | None = field(repr=False, default=None)
    tsne: object = field(repr=False, default=None)  # t-SNE maps: openTSNE's TSNEEmbedding or a TsneProcess

    def close(self) -> None:
        """End the t-SNE child process, if this map has one (place() no longer works for t-SNE)."""
        if isinstance(self.tsne, TsneProcess):
            self.tsne.close()

    def place(self, x) -> np.ndarray:
        """Where new images land on this map: (2,) for one image, (M, 2) for a batch.
        PCA: the same projection; t-SNE: openTSNE's transform against the fixed map."""
        batch = images(self.model, x, "place")
        features = layer_features(self.model, batch, self.layer)
        points = self.place_features(features)
        return points[0] if np.asarray(x).ndim == len(self.model.input_shape) else points

    def place_features(self, features: np.ndarray) -> np.ndarray:
        reduced = self.projection(np.asarray(features, np.float64).reshape(len(features), -1))
        if self.method == PCA:
            return reduced.astype(np.float32)
        if isinstance(self.tsne, TsneProcess) and not self.tsne.alive:
            raise RuntimeError("this t-SNE map has been closed; compute the map again to place new images")
        return np.asarray(self.tsne.transform(reduced), np.float32)


def layer_features(model, x, layer: str, progress=None, cancel=None) -> np.ndarray | None:
    """The layer's output for every image of x, flattened to (N, D) float32, in batches of BATCH
    (the other layers' outputs are dropped batch by batch); None when cancelled."""
    out = None
    for start in range(0, len(x), BATCH):
        if _cancelled(cancel):
            return None
        chunk = model.activations(x[start:start + BATCH])[layer]
        chunk = chunk.reshape(len(chunk), -1)
        if out is None:
            out = np.empty((len(x), chunk.shape[1]), np.float32)
        out[start:start + len(chunk)] = chunk
        if progress is not None:
            progress(start + len(chunk), len(x))
    return out


def features_bytes(model, layer: str, n: int) -> int:
    """What the map of n images at this layer needs, priced from the shapes before any array is made."""
    report = model.checked_report()
    row = next(r for r in report.rows if r.name == layer)
    per_image = int(np.prod([d for d in row.output_shape if d is not None]))
    return n * per_image * 4 * FEATURE_COPIES + n * n * 8  # float32 copies; SVD's (n, n) float64 factor


def check_embedding_memory(model, layer: str, n: int, available: int | None = None) -> None:
    """MemoryLimitError naming the numbers when the map cannot fit in memory (allocates nothing)."""
    from ..memory import HEADROOM, MemoryLimitError, available_memory_bytes, format_bytes

    need = features_bytes(model, layer, n)
    room = available_memory_bytes() if available is None else int(available)
    if need > int(room * HEADROOM):
        raise MemoryLimitError(f"a map of {n} images at layer '{layer}' needs about {format_bytes(need)} but this "
                               f"machine can spare {format_bytes(int(room * HEADROOM))}: choose fewer images "
                               "or a later (smaller) layer")


def embed(model, x, labels, layer: str, method: str = TSNE, seed: int = 0, perplexity: float = 30.0,
          progress=None, cancel=None, available: int | None = None,
          separate_process: bool = False) -> Embedding | None:
    """A 2-D map of layer's activations for the images x (labels: one class per image).
    progress(done, total) in per-mille of the whole job; cancel stops between batches or
    t-SNE iterations (CALLBACK_EVERY) and then None is returned.
    separate_process: t-SNE runs in a child process (explain/tsne_process.py: a window's
    thread would otherwise freeze while openTSNE imports scikit-learn); the map keeps it to
    place new points until Embedding.close()."""
    if method not in METHODS:
        raise ValueError(f"embed: method must be one of {', '.join(METHODS)}, received {method!r}")
    find_layer(model, layer, "embed")
    x = images(model, x, "embed")
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(x):
        raise ValueError(f"embed: {len(x)} images but {len(labels)} labels; give one label per image")
    if len(x) < 3:
        raise ValueError(f"embed: a map needs at least 3 images, received {len(x)}")
    check_embedding_memory(model, layer, len(x), available)
    started = time.perf_counter()
    share = 200 if method == TSNE else 900  # per mille of the job spent collecting activations

    def report(done: int) -> None:
        if progress is not None:
            progress(min(done, 1000), 1000)

    # the child starts importing openTSNE while this process collects the activations
    child = TsneProcess() if separate_process and method == TSNE else None
    try:
        result = _embed(model, x, labels, layer, method, seed, perplexity, cancel, report, share, child, started)
    except BaseException:
        if child is not None:
            child.close()
        raise
    if result is None and child is not None:
        child.close()
    return result


def _embed(model, x, labels, layer, method, seed, perplexity, cancel, report, share, child, started):
    total = 1000
    features = layer_features(model, x, layer, cancel=cancel,
                              progress=lambda d, t: report(d * share // t))
    if features is None:
        return None
    if method == PCA:
        coords, projection = pca(features, 2)
        if coords.shape[1] < 2:  # a one-unit layer: its single axis and zeros
            coords = np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))
            projection = Projection(projection.mean, np.pad(projection.components, ((0, 2 - len(
                projection.components)), (0, 0))))
        report(total)
        return Embedding(PCA, layer, coords.astype(np.float32), labels, np.arange(len(x)),
                         time.perf_counter() - started, features.shape, model, projection)

    reduced, projection = pca(features, TSNE_PCA_DIMS)
    if _cancelled(cancel):
        return None
    report(share + 20)

    def iterations(it: int) -> None:
        report(share + 20 + it * (total - share - 20) // (TSNE_EARLY + TSNE_ITER))

    args = (seed, perplexity, TSNE_EARLY, TSNE_ITER, CALLBACK_EVERY)
    if child is not None:
        tsne = child
        coords = tsne.fit(reduced, *args, iterations=iterations, cancelled=lambda: _cancelled(cancel))
        if _cancelled(cancel):
            return None
    else:
        tsne = fit_tsne(reduced, *args, iterations=iterations, cancelled=lambda: _cancelled(cancel))
        coords = tsne
    if coords is None:
        return None
    report(total)
    return Embedding(TSNE, layer, np.asarray(coords, np.float32), labels, np.arange(len(x)),
                     time.perf_counter() - started, features.shape, model, projection, tsne)


__all__ = ["embed", "Embedding", "Projection", "pca", "layer_features", "features_bytes", "check_embedding_memory",
           "METHODS", "PCA", "TSNE", "DEFAULT_IMAGES"]
