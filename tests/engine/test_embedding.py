"""The learned space (issue 13 item 5): PCA against a reference SVD, t-SNE under a seed,
placing new points, and a trained network's map separating the classes better."""

import threading

import numpy as np
import pytest

from visualcnn.engine import layers as L
from visualcnn.engine.explain import Embedding, embed
from visualcnn.engine.explain.embedding import check_embedding_memory, pca
from visualcnn.engine.memory import MemoryLimitError
from visualcnn.engine.model import Sequential

pytest.importorskip("openTSNE")


def _cnn(seed=0):
    model = Sequential([L.Input(shape=(28, 28, 1)), L.Conv2D(8, 3, activation="relu", name="c1"),
                        L.MaxPooling2D(2), L.Conv2D(16, 3, activation="relu", name="c2"),
                        L.MaxPooling2D(2), L.Flatten(), L.Dense(32, activation="relu", name="d"),
                        L.Dense(10, activation="softmax", name="out")])
    model.build(seed=seed)
    return model


@pytest.fixture(scope="module")
def digits():
    from visualcnn.engine.datasets import load_mnist

    (x, y), (xt, yt) = load_mnist()
    return ((x[:600, :, :, None] / 255.0).astype(np.float32), y[:600].astype(np.int64),
            (xt[:300, :, :, None] / 255.0).astype(np.float32), yt[:300].astype(np.int64))


@pytest.fixture(scope="module")
def trained(digits):
    x, y, _, _ = digits
    model = _cnn()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=32, epochs=2, verbose=0)
    return model


def _knn_accuracy(coords, labels, k=5):
    """Leave-one-out k-nearest-neighbour accuracy on the map: how well the classes separate."""
    d = ((coords[:, None, :] - coords[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    near = np.argsort(d, axis=1)[:, :k]
    votes = np.array([np.bincount(labels[row], minlength=10).argmax() for row in near])
    return float((votes == labels).mean())


def test_pca_equals_a_reference_svd_up_to_sign(digits):
    _, _, x, y = digits
    model = _cnn()
    result = embed(model, x, y, "c2", method="pca")
    f = model.activations(x)["c2"].reshape(len(x), -1).astype(np.float64)
    u, s, _ = np.linalg.svd(f - f.mean(axis=0), full_matrices=False)
    reference = u[:, :2] * s[:2]
    for axis in range(2):
        sign = np.sign(reference[:, axis] @ result.coords[:, axis])
        np.testing.assert_allclose(result.coords[:, axis], sign * reference[:, axis], rtol=1e-4,
                                   atol=1e-4 * np.abs(reference[:, axis]).max())
    assert isinstance(result, Embedding) and result.method == "pca" and result.layer == "c2"
    np.testing.assert_array_equal(result.labels, y)
    np.testing.assert_array_equal(result.indices, np.arange(len(x)))
    assert result.features_shape == (len(x), 11 * 11 * 16)


def test_pca_sign_is_fixed_and_components_orthonormal():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(50, 7)) * np.arange(1, 8)
    coords, projection = pca(f, 3)
    c = projection.components
    np.testing.assert_allclose(c @ c.T, np.eye(3), atol=1e-12)
    assert np.all(c[np.arange(3), np.abs(c).argmax(axis=1)] > 0)
    np.testing.assert_allclose(projection(f), coords, atol=1e-12)
    np.testing.assert_allclose(pca(-f + 3, 3)[1].components, c, atol=1e-10)  # same axes, whatever the data's sign


def test_place_puts_a_map_image_on_its_own_point_for_pca(digits):
    _, _, x, y = digits
    result = embed(_cnn(), x, y, "d", method="pca")
    np.testing.assert_allclose(result.place(x[7]), result.coords[7], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(result.place(x[:3]), result.coords[:3], rtol=1e-4, atol=1e-5)
    assert result.place(x[7]).shape == (2,)


def test_tsne_is_deterministic_under_a_seed_and_places_new_points(digits):
    _, _, x, y = digits
    model = _cnn()
    first = embed(model, x[:200], y[:200], "d", method="tsne", seed=4)
    again = embed(model, x[:200], y[:200], "d", method="tsne", seed=4)
    other = embed(model, x[:200], y[:200], "d", method="tsne", seed=5)
    np.testing.assert_array_equal(first.coords, again.coords)
    assert not np.allclose(first.coords, other.coords)
    assert first.coords.shape == (200, 2) and np.isfinite(first.coords).all()
    point = first.place(x[250])
    assert point.shape == (2,) and np.isfinite(point).all()
    spread = np.abs(first.coords).max()
    assert np.abs(point).max() <= 1.5 * spread  # on the map, not thrown off it
    np.testing.assert_array_equal(point, first.place(x[250]))  # placing is deterministic too


def test_trained_network_separates_the_classes_better(digits, trained):
    _, _, x, y = digits
    scores = {}
    for name, model in (("untrained", _cnn(seed=1)), ("trained", trained)):
        for method in ("pca", "tsne"):
            scores[name, method] = _knn_accuracy(embed(model, x, y, "d", method=method, seed=0).coords, y)
    print(scores)
    # measured: PCA 0.46 vs 0.38, t-SNE 0.80 vs 0.60 (5-NN, leave one out)
    assert scores["trained", "pca"] > scores["untrained", "pca"] + 0.03, scores
    assert scores["trained", "tsne"] > scores["untrained", "tsne"] + 0.1, scores
    assert scores["trained", "tsne"] > 0.7, scores


def test_progress_reaches_the_end_and_cancel_returns_none(digits):
    _, _, x, y = digits
    model = _cnn()
    seen = []
    embed(model, x[:120], y[:120], "d", method="tsne", progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (1000, 1000) and len(seen) > 20
    assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))  # never goes backwards
    stop = threading.Event()
    calls = []

    def progress(done, total):
        calls.append(done)
        if done > 400:  # during the t-SNE iterations
            stop.set()
    assert embed(model, x[:120], y[:120], "d", method="tsne", progress=progress, cancel=stop) is None
    assert max(calls) < 1000
    stop.set()
    assert embed(model, x[:120], y[:120], "d", method="pca", cancel=stop) is None


def test_memory_is_checked_before_it_is_spent_and_errors_are_one_line(digits):
    _, _, x, y = digits
    model = _cnn()
    with pytest.raises(MemoryLimitError, match=r"map of 2000 images at layer 'c1' needs about .* choose fewer"):
        check_embedding_memory(model, "c1", 2000, available=10 * 2**20)
    check_embedding_memory(model, "c1", 2000, available=2**40)
    with pytest.raises(MemoryLimitError):
        embed(model, x, y, "c1", method="pca", available=2**20)
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        embed(model, x, y, "nope")
    with pytest.raises(ValueError, match="method must be one of pca, tsne"):
        embed(model, x, y, "d", method="umap")
    with pytest.raises(ValueError, match="300 images but 5 labels"):
        embed(model, x, y[:5], "d")


def test_tsne_in_a_child_process_gives_the_same_map_and_places_points(digits):
    """The window's way (explain/tsne_process.py): same seed, same map as in-process; the child
    keeps the map to place new points, ends on close(), and a cancelled run leaves no child."""
    _, _, x, y = digits
    model = _cnn()
    here = embed(model, x[:150], y[:150], "d", method="tsne", seed=2)
    there = embed(model, x[:150], y[:150], "d", method="tsne", seed=2, separate_process=True)
    try:
        np.testing.assert_array_equal(there.coords, here.coords)
        np.testing.assert_allclose(there.place(x[200]), here.place(x[200]), rtol=1e-5, atol=1e-5)
    finally:
        there.close()
    assert not there.tsne.alive
    with pytest.raises(RuntimeError, match="compute the map again"):
        there.place(x[200])
    stop = threading.Event()
    progress = lambda done, total: stop.set() if done > 300 else None  # noqa: E731
    assert embed(model, x[:150], y[:150], "d", method="tsne", separate_process=True, progress=progress,
                 cancel=stop) is None
    import multiprocessing
    assert not [p for p in multiprocessing.active_children() if p.name == "visualcnn-tsne"]
