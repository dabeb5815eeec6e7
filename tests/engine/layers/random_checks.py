"""Checks for the training-only random layers (SpatialDropout2D, GaussianNoise and the
augmentation layers): identity when predicting, reproducible per seed, and a backward
that is the adjoint of the forward's transform.

Imported by the test files next to it (pytest puts this folder on sys.path).
"""

from __future__ import annotations

import numpy as np

from visualcnn.engine import Sequential, layers as L
from visualcnn.engine.layers.base import Context


def fixed_randomness(layer, seed: int = 7):
    """Make every forward of `layer` draw the same random numbers (reseeded first), so
    finite differences and adjoint checks see one fixed transform."""
    cls_forward = type(layer).forward

    def forward(x, ctx, training=False):
        layer.reseed(seed)
        return cls_forward(layer, x, ctx, training)

    layer.forward = forward
    return layer


def built(layer, in_shape: tuple, seed: int = 0):
    layer.build((None, *in_shape), np.random.default_rng(seed))
    return layer


def training_output(layer, x: np.ndarray, seed: int) -> np.ndarray:
    layer.reseed(seed)
    return np.array(layer.forward(x, Context(), training=True))


def check_training_only(layer, x: np.ndarray) -> None:
    """Predicting returns x itself (no copy, as Keras's identity); training changes x, the
    same way for the same seed and differently for another; x is never written into;
    preview(x, seed) shows the training output without drawing from the layer's generator."""
    x_copy = x.copy()
    assert layer.forward(x, Context(), training=False) is x
    a, b, c = training_output(layer, x, 1), training_output(layer, x, 1), training_output(layer, x, 2)
    np.testing.assert_array_equal(x, x_copy)
    assert a.shape == x.shape and a.dtype == np.float32
    assert not np.array_equal(a, x)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # preview: the training output for a seed, leaving the layer's own generator alone
    state = layer._rng.bit_generator.state
    np.testing.assert_array_equal(layer.preview(x, seed=1), a)
    assert layer._rng.bit_generator.state == state
    # the backward of an inference call passes dy through
    ctx = Context()
    layer.forward(x, ctx, training=False)
    dy = np.ones_like(x)
    assert layer.backward(dy, ctx) is dy


def check_adjoint(layer, x: np.ndarray, seed: int = 3, rtol: float = 1e-5) -> None:
    """<T x, r> == <x, T^T r> for the fixed transform T of one training forward (the
    backward must be the transpose of the forward), in float64 sums; dy is not written.
    T is the linear part: a constant fill value adds T(0), which is subtracted."""
    rng = np.random.default_rng(seed)
    offset = training_output(layer, np.zeros_like(x), seed).astype(np.float64)
    layer.reseed(seed)
    ctx = Context()
    tx = np.array(layer.forward(x, ctx, training=True), np.float64) - offset
    r = rng.standard_normal(x.shape).astype(np.float32)
    r_copy = r.copy()
    ttr = np.array(layer.backward(r, ctx), np.float64)
    np.testing.assert_array_equal(r, r_copy, err_msg="backward wrote into the dy it was given")
    lhs = float((tx * r).sum())
    rhs = float((x.astype(np.float64) * ttr).sum())
    assert abs(lhs - rhs) <= rtol * (abs(lhs) + abs(rhs) + 1.0), (lhs, rhs)


def fit_weights(layer_factory, in_shape=(8, 8, 2), seed: int = 0) -> list[np.ndarray]:
    """The trained weights of Input -> Conv2D -> layer -> Flatten -> Dense after one short
    fit; the model seed drives the layer's random numbers (the training generator reseeds
    it as Dropout)."""
    model = Sequential([L.Input(shape=in_shape), L.Conv2D(3, 3, padding="same", activation="tanh"), layer_factory(),
                        L.Flatten(), L.Dense(3, activation="softmax")], seed=seed)
    model.build()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.random((12, *in_shape)).astype(np.float32)
    y = rng.integers(0, 3, 12)
    model.fit(x, y, batch_size=4, epochs=2, verbose=0)
    return [w.copy() for w in model.trainable_weights]


def check_deterministic_fit(layer_factory, in_shape=(8, 8, 2)) -> None:
    """Two runs from the same model seed train to exactly the same weights."""
    a, b = fit_weights(layer_factory, in_shape), fit_weights(layer_factory, in_shape)
    for wa, wb in zip(a, b):
        np.testing.assert_array_equal(wa, wb)


def keras_transform(class_name: str, config: dict, x: np.ndarray, transformation: dict) -> np.ndarray:
    """The real Keras layer's training transform of x with the given random parameters."""
    from layer_checks import live_keras

    keras = live_keras()
    import torch

    layer = getattr(keras.layers, class_name)(**config)
    tensors = {k: (torch.tensor(v) if isinstance(v, np.ndarray) else v) for k, v in transformation.items()}
    return np.asarray(keras.ops.convert_to_numpy(layer.transform_images(torch.tensor(x), tensors, training=True)))


def keras_is_identity_when_predicting(class_name: str, config: dict, x: np.ndarray) -> bool:
    from layer_checks import live_keras

    keras = live_keras()
    layer = getattr(keras.layers, class_name)(**config)
    return np.array_equal(np.asarray(keras.ops.convert_to_numpy(layer(x, training=False))), x)


# --- the affine augmentation layers (RandomTranslation, RandomRotation, RandomZoom) -------

FILL_MODES = ("constant", "nearest", "reflect", "wrap")
_PAD_MODES = {"nearest": "edge", "reflect": "symmetric", "wrap": "wrap"}  # numpy's names


def affine_reference(x: np.ndarray, params: np.ndarray, interpolation: str, fill_mode: str,
                     fill_value: float) -> np.ndarray:
    """Output pixel (i, j) of image n reads the input at column a0*j + a1*i + a2, row
    b0*j + b1*i + b2, from the image padded by numpy's own rule for the fill mode (an
    implementation independent of the kernels' index arithmetic). float64 loops."""
    n_img, h, w, _ = x.shape
    pad = 3 * max(h, w)
    spec = ((pad, pad), (pad, pad), (0, 0))
    out = np.empty(x.shape, np.float64)
    for n in range(n_img):
        img = x[n].astype(np.float64)
        padded = (np.pad(img, spec, constant_values=fill_value) if fill_mode == "constant"
                  else np.pad(img, spec, mode=_PAD_MODES[fill_mode]))
        a0, a1, a2, b0, b1, b2 = params[n].astype(np.float32)
        for i in range(h):
            for j in range(w):
                col = a0 * np.float32(j) + a1 * np.float32(i) + a2
                row = b0 * np.float32(j) + b1 * np.float32(i) + b2
                if interpolation == "nearest":
                    out[n, i, j] = padded[int(np.rint(row)) + pad, int(np.rint(col)) + pad]
                    continue
                r0, c0 = int(np.floor(row)), int(np.floor(col))
                wr, wc = float(row - np.floor(row)), float(col - np.floor(col))
                p = padded[r0 + pad:r0 + pad + 2, c0 + pad:c0 + pad + 2]
                out[n, i, j] = ((1 - wr) * ((1 - wc) * p[0, 0] + wc * p[0, 1])
                                + wr * ((1 - wc) * p[1, 0] + wc * p[1, 1]))
    return out


def drawn_params(layer, n: int, h: int, w: int, seed: int) -> np.ndarray:
    """The per-image transform rows a training forward reseeded with `seed` uses."""
    layer.reseed(seed)
    return layer._params(n, h, w, layer._rng)


def check_affine_layer(layer_factory, x: np.ndarray) -> None:
    """For every fill mode and interpolation: the forward equals the numpy reference with
    the drawn parameters, the backward is its adjoint, and dx matches finite differences."""
    from layer_checks import check_gradients

    n, h, w, _ = x.shape
    for fill_mode in FILL_MODES:
        for interpolation in ("bilinear", "nearest"):
            layer = built(layer_factory(fill_mode=fill_mode, interpolation=interpolation, fill_value=0.5),
                          x.shape[1:])
            y = training_output(layer, x, 11)
            ref = affine_reference(x, drawn_params(layer, n, h, w, 11), interpolation, fill_mode, 0.5)
            np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5, err_msg=f"{fill_mode} {interpolation}")
            check_adjoint(layer, x)
            if interpolation == "bilinear":  # nearest is piecewise constant in the parameters, linear in x
                check_gradients(fixed_randomness(layer, 11), x, n_checks=15)
