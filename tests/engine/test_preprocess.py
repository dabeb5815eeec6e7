"""canvas_to_mnist: crop, area-average to 20 px, centre of mass at (14, 14).

No Qt: canvases are plain numpy arrays, white ink on black.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from visualcnn.engine.preprocess import (
    BOX_SIZE,
    CENTRE,
    FIELD_SIZE,
    NothingDrawnError,
    area_resize,
    canvas_steps,
    canvas_to_mnist,
    centre_of_mass,
)


def canvas(h=280, w=280, dtype=np.uint8):
    return np.zeros((h, w), dtype=dtype)


def ink_bbox(image, threshold=0.0):
    rows = np.flatnonzero((image > threshold).any(axis=1))
    cols = np.flatnonzero((image > threshold).any(axis=0))
    return rows[0], cols[0], rows[-1] + 1, cols[-1] + 1


def rectangle(top, left, h, w, size=(280, 280)):
    c = canvas(*size)
    c[top:top + h, left:left + w] = 255
    return c


# --------------------------------------------------------------------------------
# Cropping, scaling, aspect ratio


@pytest.mark.parametrize(
    "top, left, h, w",
    [
        (0, 0, 280, 280),
        (10, 200, 40, 60),
        (100, 3, 150, 7),
        (279, 279, 1, 1),
        (50, 50, 1, 200),
    ],
)
def test_bbox_is_the_ink(top, left, h, w):
    steps = canvas_steps(rectangle(top, left, h, w))
    assert steps.bbox == (top, left, top + h, left + w)


def test_faint_noise_is_not_ink():
    rng = np.random.default_rng(0)
    c = (rng.random((280, 280)) * 10).astype(np.uint8)  # up to 9/255 < 0.05
    c[60:200, 90:150] = 255
    steps = canvas_steps(c)
    assert steps.bbox == (60, 90, 200, 150)


@pytest.mark.parametrize(
    "h, w, expected_shape",
    [
        (200, 20, (20, 2)),     # tall thin stroke stays tall
        (20, 200, (2, 20)),     # and a wide one stays wide
        (100, 100, (20, 20)),
        (140, 70, (20, 10)),
        (70, 49, (20, 14)),
        (3, 2, (20, 14)),       # ceil(2 * 20 / 3) = 14; a tiny dot is enlarged
        (210, 100, (20, 10)),   # 100 * 20 / 210 = 9.52 -> 10, last column partial
    ],
)
def test_longest_side_20_aspect_kept(h, w, expected_shape):
    steps = canvas_steps(rectangle(30, 40, h, w))
    assert steps.scaled.shape == expected_shape
    assert steps.scale == pytest.approx(BOX_SIZE / max(h, w))
    top, left, bottom, right = ink_bbox(steps.result)
    assert (bottom - top, right - left) == expected_shape


def test_tall_thin_stroke_in_result():
    result = canvas_to_mnist(rectangle(40, 120, 200, 16))
    top, left, bottom, right = ink_bbox(result)
    assert bottom - top == 20
    assert right - left < 20 / 4


def test_area_average_of_stripes_is_grey():
    # One-pixel stripes halved: area averaging gives 0.5 everywhere; nearest or
    # bilinear sampling would give 0 or 1.
    c = np.zeros((40, 40), np.float32)
    c[:, ::2] = 1.0
    steps = canvas_steps(c)
    np.testing.assert_allclose(steps.scaled[:, :19], 0.5, atol=1e-6)


@pytest.mark.parametrize("h, w, n_out", [(7, 5, 20), (13, 29, 20), (3, 3, 20), (280, 93, 20)])
def test_area_resize_matches_supersampled_reference(h, w, n_out):
    """Scale n_out/longer is rational: enlarge by n_out (exact), average L x L blocks."""
    rng = np.random.default_rng(h * w)
    image = rng.random((h, w)).astype(np.float32)
    longer = max(h, w)
    scale = n_out / longer
    out = area_resize(image, scale)
    fine = np.kron(image, np.ones((n_out, n_out), np.float32))
    oh, ow = out.shape
    padded = np.zeros((oh * longer, ow * longer), np.float32)
    padded[: fine.shape[0], : fine.shape[1]] = fine
    ref = padded.reshape(oh, longer, ow, longer).mean(axis=(1, 3))
    np.testing.assert_allclose(out, ref, atol=1e-5)
    assert out.shape == (math.ceil(h * scale - 1e-6), math.ceil(w * scale - 1e-6))


def test_area_resize_conserves_ink():
    rng = np.random.default_rng(1)
    image = rng.random((123, 77)).astype(np.float32)
    scale = 20 / 123
    out = area_resize(image, scale)
    assert out.sum() == pytest.approx(image.sum() * scale * scale, rel=1e-5)


# --------------------------------------------------------------------------------
# Centring


def blob(rng, size=(280, 280)):
    """A random scribble: a few thick line segments anywhere on the canvas."""
    c = np.zeros(size, np.float32)
    yy, xx = np.mgrid[: size[0], : size[1]]
    points = rng.uniform(20, min(size) - 20, (rng.integers(2, 5), 2))
    for (y0, x0), (y1, x1) in zip(points[:-1], points[1:]):
        for t in np.linspace(0, 1, 40):
            y, x = y0 + t * (y1 - y0), x0 + t * (x1 - x0)
            c = np.maximum(c, np.clip(9 - np.hypot(yy - y, xx - x), 0, 1))
    return c


@pytest.mark.parametrize("seed", range(12))
def test_centre_of_mass_within_half_a_pixel_of_14(seed):
    steps = canvas_steps(blob(np.random.default_rng(seed)))
    cy, cx = centre_of_mass(steps.result)
    assert abs(cy - CENTRE) <= 0.5 + 1e-9
    assert abs(cx - CENTRE) <= 0.5 + 1e-9


def test_shift_is_integer_and_consistent():
    steps = canvas_steps(blob(np.random.default_rng(3)))
    oy, ox = steps.offset
    assert isinstance(oy, int) and isinstance(ox, int)
    h, w = steps.scaled.shape
    expected = np.zeros((FIELD_SIZE, FIELD_SIZE), np.float32)
    expected[oy:oy + h, ox:ox + w] = steps.scaled
    np.testing.assert_array_equal(steps.result, expected)
    assert steps.shift == (oy - (FIELD_SIZE - h) / 2, ox - (FIELD_SIZE - w) / 2)
    cy, cx = steps.centre_of_mass
    assert abs(cy + oy - CENTRE) <= 0.5 and abs(cx + ox - CENTRE) <= 0.5


def test_position_on_canvas_does_not_matter():
    shape = blob(np.random.default_rng(5), size=(150, 150))
    results = []
    for top, left in [(0, 0), (130, 130), (17, 250), (250, 3)]:
        c = np.zeros((400, 400), np.float32)
        c[top:top + 150, left:left + 150] = shape
        results.append(canvas_to_mnist(c))
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


def test_lopsided_drawing_is_cut_not_refused():
    # A heavy bar on top of a hair-thin stem: the centre of mass sits near the top,
    # so centring pushes the stem's end past the bottom edge, as MNIST did.
    c = canvas()
    c[20:80, 40:240] = 255
    c[80:260, 139:140] = 255
    steps = canvas_steps(c)
    assert steps.offset[0] + steps.scaled.shape[0] > FIELD_SIZE
    assert steps.result.shape == (28, 28)
    assert steps.result[27].max() > 0


# --------------------------------------------------------------------------------
# Inputs and outputs


def test_uint8_and_float_inputs_agree():
    rng = np.random.default_rng(7)
    c8 = (blob(rng) * 255).astype(np.uint8)
    from_u8 = canvas_to_mnist(c8)
    from_f64 = canvas_to_mnist(c8 / 255.0)
    from_f32 = canvas_to_mnist((c8 / 255.0).astype(np.float32))
    np.testing.assert_allclose(from_u8, from_f64, atol=1e-6)
    np.testing.assert_allclose(from_u8, from_f32, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64, np.bool_])
def test_value_range_and_dtype(dtype):
    c = blob(np.random.default_rng(2))
    if dtype == np.uint8:
        c = (c * 255).astype(np.uint8)
    elif dtype == np.bool_:
        c = c > 0.5
    result = canvas_to_mnist(c.astype(dtype))
    assert result.shape == (28, 28)
    assert result.dtype == np.float32
    assert result.min() >= 0.0 and result.max() <= 1.0
    assert result.max() > 0.5


def test_float_above_one_is_clipped():
    c = np.zeros((50, 50))
    c[10:40, 20:30] = 7.0
    result = canvas_to_mnist(c)
    assert result.max() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "image",
    [canvas(), canvas(dtype=np.float32), np.full((280, 280), 0.04), np.zeros((0, 0))],
    ids=["uint8", "float", "faint-noise-only", "empty"],
)
def test_blank_canvas(image):
    with pytest.raises(NothingDrawnError, match="^nothing drawn yet$"):
        canvas_to_mnist(image)
    assert issubclass(NothingDrawnError, ValueError)


@pytest.mark.parametrize("image", [np.zeros((28, 28, 3)), np.zeros(784)])
def test_not_2d(image):
    with pytest.raises(ValueError, match="2-D"):
        canvas_to_mnist(image)


def test_nan_rejected():
    c = np.zeros((10, 10))
    c[5, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        canvas_to_mnist(c)


# --------------------------------------------------------------------------------
# Accuracy preservation: re-drawn MNIST digits come back as themselves


@pytest.fixture(scope="module")
def mnist(tmp_path_factory):
    from visualcnn.engine.datasets import load_mnist

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VISUALCNN_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        return load_mnist()


@pytest.fixture(scope="module")
def redrawn(mnist):
    """500 test digits, each enlarged 10x (280x280) at an off-centre spot of a
    400x400 canvas, as a user might draw them."""
    (_, _), (x_test, y_test) = mnist
    rng = np.random.default_rng(0)
    idx = rng.choice(len(x_test), 500, replace=False)
    canvases = []
    for k, i in enumerate(idx):
        c = np.zeros((400, 400), np.uint8)
        top, left = rng.integers(0, 121, 2)
        c[top:top + 280, left:left + 280] = np.kron(x_test[i], np.ones((10, 10), np.uint8))
        canvases.append(c)
    return idx, canvases


def test_redrawn_digits_are_reproduced_exactly_without_threshold(mnist, redrawn):
    # With every non-zero pixel counted as ink the crop is MNIST's own 20-px box, so
    # area averaging undoes the 10x enlargement exactly and the integer shift to
    # (14, 14) puts every digit back where MNIST had it. Centring on 13.5 instead
    # moves about half of them by a pixel and fails this.
    (_, _), (x_test, _) = mnist
    idx, canvases = redrawn
    for i, c in zip(idx, canvases):
        np.testing.assert_allclose(canvas_to_mnist(c, threshold=0.0), x_test[i] / 255.0, atol=1e-5)


def test_redrawn_digits_keep_template_accuracy(mnist, redrawn):
    (x_train, y_train), (x_test, y_test) = mnist
    idx, canvases = redrawn
    train = x_train.reshape(len(x_train), -1).astype(np.float32) / 255.0
    centroids = np.stack([train[y_train == d].mean(axis=0) for d in range(10)])

    def accuracy(images):
        flat = images.reshape(len(images), -1)
        dist = ((flat[:, None, :] - centroids[None]) ** 2).sum(axis=-1)
        return float((dist.argmin(axis=1) == y_test[idx]).mean())

    original = x_test[idx].astype(np.float32) / 255.0
    again = np.stack([canvas_to_mnist(c) for c in canvases])  # default threshold
    assert np.abs(again - original).mean() < 0.002
    assert accuracy(original) > 0.75  # the classifier is real, not chance
    assert abs(accuracy(again) - accuracy(original)) <= 0.01
