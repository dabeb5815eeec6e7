"""The compiled softmax crossentropy and accuracy (kernels/softmax_loss.py) against the
numpy formulas they replaced in the training step."""

import numpy as np
import pytest

from visualcnn.engine import losses

EPS = losses.EPSILON


def _log_softmax(z):
    with np.errstate(invalid="ignore", over="ignore"):
        m = z.max(axis=-1, keepdims=True)
        shifted = z.astype(np.float64) - m
        return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def numpy_sparse(logits, labels):
    """The numpy reference: loss and gradient w.r.t. the logits, Keras's clip on p."""
    k = logits.shape[-1]
    labels = np.asarray(labels).reshape(-1).astype(np.intp)
    rows = np.arange(labels.size)
    logp = _log_softmax(logits.reshape(-1, k))
    picked = np.clip(logp[rows, labels], np.log(EPS), np.log1p(-EPS))
    g = np.exp(logp)
    g[rows, labels] -= 1.0
    return float(-picked.mean()), (g / labels.size).astype(np.float32)


def numpy_categorical(logits, targets):
    k = logits.shape[-1]
    t = np.asarray(targets, dtype=np.float64).reshape(-1, k)
    logp = _log_softmax(logits.reshape(-1, k))
    clipped = np.clip(logp, np.log(EPS), np.log1p(-EPS))
    grad = (np.exp(logp) * t.sum(axis=-1, keepdims=True) - t) / t.shape[0]
    return float(-(t * clipped).sum(axis=-1).mean()), grad.astype(np.float32)


def _fused(name, logits, y):
    grad = np.empty(logits.shape, np.float32)
    value = losses.get(name).compute(np.empty_like(logits), y, grad, logits=logits)
    return value, grad


@pytest.mark.parametrize("shape", [(64, 10), (1, 2), (7, 3), (33, 100)])
@pytest.mark.parametrize("scale", [1.0, 30.0])
def test_sparse_matches_the_numpy_formula(shape, scale):
    rng = np.random.default_rng(shape[0] * 7 + shape[1])
    z = (scale * rng.standard_normal(shape)).astype(np.float32)
    y = rng.integers(0, shape[1], shape[0])
    value, grad = _fused("sparse_categorical_crossentropy", z, y.astype(np.uint8 if shape[1] < 256 else np.int64))
    ref_value, ref_grad = numpy_sparse(z, y)
    assert value == pytest.approx(ref_value, rel=1e-12, abs=1e-14)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("soft", [False, True])
def test_categorical_matches_the_numpy_formula(soft):
    rng = np.random.default_rng(4)
    z = (5 * rng.standard_normal((20, 6))).astype(np.float32)
    t = rng.random((20, 6)) if soft else np.eye(6)[rng.integers(0, 6, 20)]
    value, grad = _fused("categorical_crossentropy", z, t)
    ref_value, ref_grad = numpy_categorical(z, t)
    assert value == pytest.approx(ref_value, rel=1e-12)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-6, atol=1e-9)


def test_sparse_labels_and_their_one_hot_give_identical_numbers():
    # lesson 11's claim: the same formula, so the same run
    rng = np.random.default_rng(5)
    z = (4 * rng.standard_normal((64, 10))).astype(np.float32)
    y = rng.integers(0, 10, 64)
    sparse = _fused("sparse_categorical_crossentropy", z, y)
    onehot = _fused("categorical_crossentropy", z, np.eye(10)[y])
    assert sparse[0] == onehot[0]
    assert np.array_equal(sparse[1], onehot[1])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_logit_gives_the_formulas_loss(bad):
    z = np.array([[1.0, 2.0, 0.5], [0.1, 0.2, 0.3]], np.float32)
    z[0, 1] = bad
    value, _ = _fused("sparse_categorical_crossentropy", z, np.array([0, 2]))
    ref, _ = numpy_sparse(z, np.array([0, 2]))
    assert np.isnan(value) == np.isnan(ref)
    if not np.isnan(ref):
        assert value == pytest.approx(ref)


@pytest.mark.parametrize("label", [-1, 3, 10])
def test_a_label_outside_the_classes_is_named(label):
    z = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match=rf"label {label} is not a class number.*from 0 to 2"):
        _fused("sparse_categorical_crossentropy", z, np.array([0, label]))


def test_a_label_count_that_does_not_match_is_refused():
    with pytest.raises(ValueError, match="3 labels for 2 predictions"):
        _fused("sparse_categorical_crossentropy", np.zeros((2, 3), np.float32), np.array([0, 1, 2]))


def test_the_gradient_of_a_non_contiguous_output_is_written_too():
    rng = np.random.default_rng(6)
    z = rng.standard_normal((8, 5)).astype(np.float32)
    y = rng.integers(0, 5, 8)
    grad = np.zeros((5, 8), np.float32).T  # a transposed view
    losses.get("sparse_categorical_crossentropy").compute(np.empty_like(z), y, grad, logits=z)
    np.testing.assert_allclose(grad, numpy_sparse(z, y)[1], rtol=1e-6, atol=1e-9)


def test_correct_fraction_is_numpys_argmax():
    rng = np.random.default_rng(7)
    p = rng.random((50, 4)).astype(np.float32)
    p[0] = [0.5, 0.5, 0.1, 0.1]  # a tie: the first wins
    p[1] = [0.1, np.nan, 0.9, np.nan]  # NaN: the first NaN, as np.argmax
    p[2] = [np.nan, 0.2, 0.3, 0.1]
    y = rng.integers(0, 4, 50)
    y[:3] = [0, 1, 0]
    expected = float((p.argmax(axis=-1) == y).mean())
    assert losses.correct_fraction("sparse", p, y) == expected
    assert losses.correct_fraction("sparse", p, y.reshape(-1, 1).astype(np.float32)) == expected
    t = np.eye(4)[y]
    assert losses.correct_fraction("categorical", p, t) == expected
    assert 0.0 < expected < 1.0
