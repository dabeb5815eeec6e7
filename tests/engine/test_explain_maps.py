"""Grad-CAM, occlusion, SmoothGrad and the sanity check (issue 13 item 3) against
definitions computed here independently: closed forms, finite differences, brute-force loops."""

import numpy as np
import pytest

from visualcnn.engine import layers as L
from visualcnn.engine.explain import gradcam, occlusion, sanity_check, smoothgrad
from visualcnn.engine.explain.gradcam import conv_layers
from visualcnn.engine.explain.occlusion import positions
from visualcnn.engine.explain.resize import resize_bilinear
from visualcnn.engine.explain.sanity import randomised_copy, spearman
from visualcnn.engine.layers.base import Context
from visualcnn.engine.model import Sequential, model_from_graph


def _images(n, shape, seed=0):
    return np.random.default_rng(seed).random((n, *shape)).astype(np.float32)


def _small_cnn(seed=3):
    model = Sequential([L.Input(shape=(10, 10, 1)), L.Conv2D(4, 3, activation="tanh", name="c1"),
                        L.MaxPooling2D(2, name="p1"), L.Conv2D(6, 3, activation="tanh", name="c2"),
                        L.Flatten(name="f"), L.Dense(5, activation="softmax", name="out")])
    model.build(seed=seed)
    return model


# --- Grad-CAM ------------------------------------------------------------------------------

def test_gradcam_equals_the_closed_form_of_a_linear_head():
    """After the conv, logit_c = sum A * W[:, c] + b, so dlogit/dA = W[:, c]: the channel
    weights are W's spatial means, the map ReLU(sum_k weight_k A_k) (same size as the input)."""
    model = Sequential([L.Input(shape=(6, 6, 1)), L.Conv2D(3, 3, padding="same", activation="tanh", name="c"),
                        L.Flatten(), L.Dense(4, activation="softmax")])
    model.build(seed=5)
    x = _images(3, (6, 6, 1))
    result = gradcam(model, x, "c", class_index=[0, 2, 3])
    a = model.activations(x)["c"].astype(np.float64)
    kernel, bias = (np.asarray(w, np.float64) for w in model.layers[-1].weights)
    for n, c in enumerate((0, 2, 3)):
        w = kernel[:, c].reshape(6, 6, 3).mean(axis=(0, 1))
        np.testing.assert_allclose(result.weights[n], w, rtol=1e-6, atol=1e-9)
        cam = np.maximum((a[n] * w).sum(axis=-1), 0)
        np.testing.assert_allclose(result.cam[n], cam, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(result.heatmap[n], cam / cam.max(), rtol=1e-5, atol=1e-7)
        assert result.scores[n] == pytest.approx(a[n].ravel() @ kernel[:, c] + bias[c], rel=1e-5)
    assert result.logit and list(result.classes) == [0, 2, 3]
    assert result.heatmap.min() >= 0 and np.allclose(result.heatmap.max(axis=(1, 2)), 1.0)


def _graph_model():
    layers = [L.Conv2D(4, 3, activation="tanh", name="c1"),
              L.Conv2D(4, 3, padding="same", activation="tanh", name="b1"),
              L.Conv2D(4, 1, name="b2"), L.Add(name="add"), L.Conv2D(3, 3, activation="tanh", name="c2"),
              L.GlobalAveragePooling2D(name="gap"), L.Dense(3, activation="softmax", name="out")]
    inbound = [(-1,), (0,), (0,), (1, 2), (3,), (4,), (5,)]
    model = model_from_graph("g", (9, 9, 2), layers, inbound)
    model.build(seed=7)
    return model


def _logits_from(model, x, position, feature):
    """The logits when layer `position`'s output is replaced by `feature` (the layers' own forward)."""
    outs = {}
    for i, layer in enumerate(model.layers):
        if i == position:
            outs[i] = feature.astype(np.float32)
            continue
        ins = [np.array(x if j == -1 else outs[j]) for j in model.inbound[i]]
        y = layer.forward(ins if layer.merge else ins[0], Context(), training=False)
        if i == len(model.layers) - 1:  # the pre-softmax score
            kernel, bias = layer.weights
            y = ins[0].astype(np.float64) @ kernel + bias
        outs[i] = np.array(y)
    return np.asarray(outs[len(model.layers) - 1], np.float64)


@pytest.mark.parametrize("layer_name, position", [("c1", 0), ("add", 3), ("c2", 4)])
def test_gradcam_channel_weights_equal_finite_differences_in_a_graph(layer_name, position):
    """weight_k = mean over space of dlogit/dA_k = (d/de logit(A + e * ones_k)) / (h * w)."""
    model = _graph_model()
    x = _images(1, (9, 9, 2), seed=4)
    result = gradcam(model, x, layer_name)
    c = int(result.classes[0])
    assert c == int(model.predict(x).argmax())
    a = model.activations(x)[layer_name].astype(np.float64)
    h, w, channels = a.shape[1:]
    eps = 1e-2
    for k in range(channels):
        step = np.zeros_like(a)
        step[..., k] = eps
        up, down = _logits_from(model, x, position, a + step), _logits_from(model, x, position, a - step)
        fd = (up[0, c] - down[0, c]) / (2 * eps) / (h * w)
        assert result.weights[0, k] == pytest.approx(fd, rel=2e-3, abs=2e-5)
    cam = np.maximum((a[0] * result.weights[0]).sum(axis=-1), 0)
    np.testing.assert_allclose(result.cam[0], cam, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("preset", ["seed_cnn", "lenet5", "resnet_mnist"])
def test_the_gradient_passes_agree_with_the_engines_saliency(preset):
    """explain's own forward/backward (gradients.Passes) gives model.input_gradients'
    numbers on chains and graphs (BatchNormalization, Add, Dropout in inference mode)."""
    from visualcnn.engine.explain.gradients import Passes, score_is_logit
    from visualcnn.engine.model_io import load_model_file
    from visualcnn.resources import resource_dir

    model = load_model_file(resource_dir() / "presets" / f"{preset}.json").model
    model.build(seed=0)
    x = _images(2, model.input_shape, seed=1)
    passes = Passes(model)
    passes.forward(x)
    classes = np.array([3, 8])
    ours = passes.backward(len(model.layers) - 1, passes.class_seed(classes), -1, skip_activation=score_is_logit(model))
    engine = np.concatenate([model.input_gradients(x[i:i + 1], int(c)) for i, c in enumerate(classes)])
    assert np.abs(engine).max() > 0
    np.testing.assert_allclose(ours, engine, rtol=1e-4, atol=1e-6 * np.abs(engine).max())


def test_gradcam_equals_pytorchs_on_a_relu_maxpool_cnn():
    """The same network written in PyTorch (float64, autograd), Grad-CAM by the definition."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    model = Sequential([L.Input(shape=(14, 14, 1)), L.Conv2D(4, 3, activation="relu", name="c1"),
                        L.MaxPooling2D(2), L.Conv2D(8, 3, activation="relu", name="c2"),
                        L.Flatten(), L.Dense(10, activation="softmax")])
    model.build(seed=4)
    x = _images(1, (14, 14, 1), seed=5)
    w = [torch.tensor(np.asarray(v, np.float64)) for v in model.get_weights()]
    xt = torch.tensor(x, dtype=torch.float64).permute(0, 3, 1, 2).requires_grad_()
    a1 = F.relu(F.conv2d(xt, w[0].permute(3, 2, 0, 1), w[1]))
    a2 = F.relu(F.conv2d(F.max_pool2d(a1, 2), w[2].permute(3, 2, 0, 1), w[3]))
    a2.retain_grad()
    z = a2.permute(0, 2, 3, 1).reshape(1, -1) @ w[4] + w[5]  # Keras flattens (h, w, c)
    c = int(z.argmax())
    z[0, c].backward()
    weights = a2.grad.mean(dim=(2, 3))[0]
    cam = F.relu((a2[0] * weights[:, None, None]).sum(0)).detach()
    heat = F.interpolate(cam[None, None], size=(14, 14), mode="bilinear", align_corners=False)[0, 0]
    ours = gradcam(model, x, "c2")
    assert ours.classes[0] == c
    np.testing.assert_allclose(ours.weights[0], weights.numpy(), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(ours.heatmap[0], (heat / heat.max()).numpy(), atol=1e-5)


def test_gradcam_highlights_the_region_the_answer_depends_on():
    """Channel 0 sees vertical strokes, channel 1 horizontal ones; class 0 reads only
    channel 0. A vertical bar top-left and a horizontal one bottom-right: class 0's map
    lights up the vertical bar, class 1's the horizontal one."""
    model = Sequential([L.Input(shape=(12, 12, 1)),
                        L.Conv2D(2, 3, padding="same", activation="relu", use_bias=False, name="c"),
                        L.Flatten(), L.Dense(2, activation="softmax")])
    model.build()
    vertical = np.tile([-1.0, 2.0, -1.0], (3, 1))
    kernel = np.stack([vertical, vertical.T], axis=-1)[:, :, None, :].astype(np.float32)
    dense = np.zeros((12 * 12 * 2, 2), np.float32)
    dense.reshape(12, 12, 2, 2)[:, :, 0, 0] = 1.0
    dense.reshape(12, 12, 2, 2)[:, :, 1, 1] = 1.0
    model.set_weights([kernel, dense, np.zeros(2, np.float32)])
    x = np.zeros((12, 12, 1), np.float32)
    x[1:6, 2, 0] = 1.0   # vertical bar, top-left
    x[9, 6:11, 0] = 1.0  # horizontal bar, bottom-right
    for c, (rows, cols) in ((0, (slice(0, 7), slice(1, 4))), (1, (slice(8, 11), slice(5, 12)))):
        heat = gradcam(model, x, "c", class_index=c).heatmap[0]
        peak = np.unravel_index(np.argmax(heat), heat.shape)
        assert rows.start <= peak[0] < rows.stop and cols.start <= peak[1] < cols.stop, (c, peak)
        assert heat[rows, cols].sum() > 0.8 * heat.sum(), c


def test_gradcam_of_a_batch_equals_one_image_at_a_time():
    model = _small_cnn()
    x = _images(4, (10, 10, 1), seed=2)
    batch = gradcam(model, x, "c2")
    for n in range(4):
        one = gradcam(model, x[n], "c2")
        assert one.classes[0] == batch.classes[n]
        np.testing.assert_allclose(one.heatmap[0], batch.heatmap[n], rtol=1e-4, atol=1e-6)


def test_gradcam_refuses_layers_without_feature_maps():
    model = _small_cnn()
    assert conv_layers(model) == ["c1", "p1", "c2"]
    with pytest.raises(ValueError, match="'f' \\(Flatten\\) does not output feature maps.*c1, p1, c2"):
        gradcam(model, _images(1, (10, 10, 1)), "f")
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        gradcam(model, _images(1, (10, 10, 1)), "nope")
    with pytest.raises(ValueError, match="class_index must be"):
        gradcam(model, _images(1, (10, 10, 1)), "c1", class_index=5)


def test_bilinear_resize_uses_half_pixel_centres():
    """2 -> 4 samples at source -0.25 (clamped), 0.25, 0.75, 1.25 (clamped), as tf.image.resize does."""
    out = resize_bilinear(np.array([[[1.0, 3.0]]]), (1, 4))
    np.testing.assert_allclose(out[0, 0], [1.0, 1.5, 2.5, 3.0])
    same = np.random.default_rng(0).random((5, 7))
    np.testing.assert_allclose(resize_bilinear(same, (5, 7)), same)


def test_bilinear_resize_equals_torch_interpolate():
    torch = pytest.importorskip("torch")
    maps = np.random.default_rng(1).random((2, 5, 3))
    ours = resize_bilinear(maps, (28, 13))
    theirs = torch.nn.functional.interpolate(torch.tensor(maps)[:, None], size=(28, 13), mode="bilinear",
                                             align_corners=False)[:, 0].numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


# --- occlusion -----------------------------------------------------------------------------

def test_occlusion_equals_a_brute_force_loop():
    model = _small_cnn()
    x = _images(2, (10, 10, 1), seed=6)
    result = occlusion(model, x, patch=(3, 4), stride=(2, 3), fill=0.5, batch_size=7)
    probs = model.predict(x)
    for n in range(2):
        c = int(probs[n].argmax())
        assert result.classes[n] == c
        total, count = np.zeros((10, 10)), np.zeros((10, 10))
        for r in (0, 2, 4, 6, 7):
            for col in (0, 3, 6):
                copy = x[n].copy()
                copy[r:r + 3, col:col + 4] = 0.5
                drop = probs[n, c] - model.predict(copy[None])[0, c]
                total[r:r + 3, col:col + 4] += drop
                count[r:r + 3, col:col + 4] += 1
                assert result.grid[n, (0, 2, 4, 6, 7).index(r), (0, 3, 6).index(col)] == pytest.approx(drop, abs=1e-6)
        np.testing.assert_allclose(result.heatmap[n], total / count, atol=1e-6)
    assert result.rows == (0, 2, 4, 6, 7) and result.cols == (0, 3, 6)


def test_occlusion_positions_cover_the_far_edge():
    assert positions(28, 4, 2) == tuple(range(0, 25, 2))
    assert positions(28, 5, 4) == (0, 4, 8, 12, 16, 20, 23)


def test_occlusion_of_the_part_the_answer_reads_drops_the_probability():
    """A Dense model that reads only the top-left 3x3 pixels: only patches there change it."""
    model = Sequential([L.Input(shape=(6, 6, 1)), L.Flatten(), L.Dense(2, activation="softmax")])
    model.build()
    kernel = np.zeros((6, 6, 2), np.float32)
    kernel[:3, :3, 0] = 0.3  # logit 2.7: the softmax is not saturated
    model.set_weights([kernel.reshape(36, 2), np.zeros(2, np.float32)])
    result = occlusion(model, np.ones((6, 6, 1), np.float32), class_index=0, patch=2, stride=2, fill=0.0)
    heat = result.heatmap[0]
    assert heat[:3, :3].min() > 0.01 and np.all(heat[4:, :] == 0) and np.all(heat[:, 4:] == 0)


def test_occlusion_checks_memory_before_making_copies(monkeypatch):
    from visualcnn.engine import memory

    model = _small_cnn()
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 1000)
    with pytest.raises(memory.MemoryLimitError):
        occlusion(model, _images(1, (10, 10, 1)), patch=2, stride=1)


def test_occlusion_refuses_bad_settings():
    model = _small_cnn()
    with pytest.raises(ValueError, match="patch 11x11 is larger than the 10x10 input"):
        occlusion(model, _images(1, (10, 10, 1)), patch=11)
    with pytest.raises(ValueError, match="stride must be a positive integer"):
        occlusion(model, _images(1, (10, 10, 1)), stride=0)


# --- SmoothGrad ----------------------------------------------------------------------------

def test_smoothgrad_without_noise_is_the_saliency():
    model = _small_cnn()
    x = _images(2, (10, 10, 1), seed=8)
    result = smoothgrad(model, x, n=5, noise=0.0, batch_size=2)
    for n in range(2):
        c = int(result.classes[n])
        saliency = model.input_gradients(x[n:n + 1], c)[0]
        np.testing.assert_array_equal(result.saliency[n], saliency)
        np.testing.assert_allclose(result.smooth[n], saliency, rtol=1e-5, atol=1e-7)
    assert np.abs(result.saliency).max() > 0


def test_smoothgrad_is_the_mean_over_seeded_noisy_copies():
    model = _small_cnn()
    x = _images(1, (10, 10, 1), seed=9)
    result = smoothgrad(model, x, class_index=2, n=6, noise=0.2, seed=11, batch_size=4)
    sigma = 0.2 * float(x.max() - x.min())
    noise = np.random.default_rng(11).standard_normal((6, 10, 10, 1))
    noisy = (x + sigma * noise).astype(np.float32)
    expected = np.mean([model.input_gradients(noisy[k:k + 1], 2)[0] for k in range(6)], axis=0)
    np.testing.assert_allclose(result.smooth[0], expected, rtol=1e-4, atol=1e-7)
    again = smoothgrad(model, x, class_index=2, n=6, noise=0.2, seed=11, batch_size=4)
    np.testing.assert_array_equal(again.smooth, result.smooth)
    other = smoothgrad(model, x, class_index=2, n=6, noise=0.2, seed=12, batch_size=4)
    assert not np.allclose(other.smooth, result.smooth)
    assert result.smooth_map.shape == (1, 10, 10) and result.smooth_map.max() == 1.0


# --- sanity check --------------------------------------------------------------------------

def test_spearman_ranks_with_ties():
    assert spearman(np.array([1, 2, 3, 4]), np.array([10, 20, 30, 40])) == pytest.approx(1.0)
    assert spearman(np.array([1, 2, 3, 4]), np.array([4, 3, 2, 1])) == pytest.approx(-1.0)
    # ties: ranks (0.5, 0.5, 2, 3) against (0, 1, 2, 3): Pearson of those ranks
    a, b = np.array([0.5, 0.5, 2, 3]), np.arange(4.0)
    assert spearman(np.array([1, 1, 2, 3]), np.array([5, 6, 7, 8])) == pytest.approx(np.corrcoef(a, b)[0, 1])
    assert np.isnan(spearman(np.zeros(4), np.arange(4)))


def test_spearman_equals_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 5, 50), rng.random(50)
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-12)


@pytest.fixture(scope="module")
def trained_cnn():
    """A tiny CNN trained on 600 MNIST digits for two epochs (about a second)."""
    from visualcnn.engine.datasets import load_mnist

    (x, y), _ = load_mnist()
    x = (x[:600, :, :, None] / 255.0).astype(np.float32)
    model = Sequential([L.Input(shape=(28, 28, 1)), L.Conv2D(8, 3, activation="relu", name="c1"),
                        L.MaxPooling2D(2), L.Conv2D(16, 3, activation="relu", name="c2"),
                        L.MaxPooling2D(2), L.Flatten(), L.Dense(10, activation="softmax", name="out")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y[:600], batch_size=32, epochs=2, verbose=0)
    return model, x[:4]


def test_sanity_check_randomised_network_gives_unrelated_maps(trained_cnn):
    model, x = trained_cnn
    before = model.get_weights()
    same = randomised_copy(model, set(), seed=1)
    np.testing.assert_array_equal(gradcam(same, x, "c2").heatmap, gradcam(model, x, "c2").heatmap)
    result = sanity_check(model, x, "gradcam", layer_name="c2", mode="all", init_seed=1)
    assert len(result.steps) == 1 and result.steps[0].randomised == ("c1", "c2", "out")
    rho = result.steps[0].spearman
    assert np.all(np.isfinite(rho)) and rho.mean() < 0.5, rho
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))  # the model is untouched
    text = "\n".join(result.lines())
    assert "all layers re-initialised: " in text


def test_sanity_check_cascades_from_the_top(trained_cnn):
    model, x = trained_cnn
    result = sanity_check(model, x, "gradcam", layer_name="c2", mode="cascade", init_seed=2)
    assert [s.randomised for s in result.steps] == [("out",), ("out", "c2"), ("out", "c2", "c1")]
    assert all(step.spearman.mean() < 0.5 for step in result.steps), [s.spearman for s in result.steps]
    assert "c1 and above re-initialised" in "\n".join(result.lines())
    # plain gradients keep more of the image's structure on a random network (the paper's
    # point is to measure it), yet the fully random copy still ranks pixels differently
    saliency = sanity_check(model, x[:1], "saliency", mode="all", init_seed=2)
    assert saliency.steps[0].spearman[0] < 0.6
    with pytest.raises(ValueError, match="gradcam needs layer_name"):
        sanity_check(model, x, "gradcam")


def test_occlusion_reports_progress_and_stops_when_cancelled():
    model = _small_cnn()
    x = _images(2, (10, 10, 1))
    seen = []
    result = occlusion(model, x, patch=2, stride=2, batch_size=10,
                       progress=lambda done, total: seen.append((done, total)))
    assert result is not None and seen == [(10, 50), (20, 50), (25, 50), (35, 50), (45, 50), (50, 50)]
    calls = []
    stop = lambda: calls.append(1) or len(calls) > 2  # noqa: E731 - stops at the third batch
    assert occlusion(model, x, patch=2, stride=2, batch_size=10, cancel=stop) is None
    assert len(calls) == 3


@pytest.mark.parametrize("method, options", [("smoothgrad", {"n": 4, "noise": 0.1, "seed": 3}),
                                             ("occlusion", {"patch": 3, "stride": 2})])
def test_sanity_check_runs_every_method(method, options):
    from visualcnn.engine.explain.sanity import heat_maps

    model = _small_cnn()
    x = _images(2, (10, 10, 1), seed=3)
    result = sanity_check(model, x, method, mode="all", init_seed=4, **options)
    classes = model.predict(x).argmax(axis=-1)
    assert list(result.classes) == list(classes)
    np.testing.assert_array_equal(result.maps, heat_maps(randomised_copy(model, set(), 0), x, method, classes, options))
    assert result.steps[0].maps.shape == (2, 10, 10)
    assert not np.allclose(result.steps[0].maps, result.maps)
    assert np.all(np.abs(result.steps[0].spearman) <= 1)


def test_a_separate_softmax_layer_gives_the_same_pre_softmax_score():
    fused = Sequential([L.Input(shape=(8, 8, 1)), L.Conv2D(3, 3, activation="relu", name="c"), L.Flatten(),
                        L.Dense(4, activation="softmax")])
    fused.build(seed=1)
    apart = Sequential([L.Input(shape=(8, 8, 1)), L.Conv2D(3, 3, activation="relu", name="c"), L.Flatten(),
                        L.Dense(4), L.Activation("softmax")])
    apart.build()
    apart.set_weights(fused.get_weights())
    x = _images(2, (8, 8, 1))
    a, b = gradcam(fused, x, "c", class_index=[1, 2]), gradcam(apart, x, "c", class_index=[1, 2])
    assert a.logit and b.logit
    np.testing.assert_allclose(b.scores, a.scores, rtol=1e-6)
    np.testing.assert_allclose(b.heatmap, a.heatmap, rtol=1e-6, atol=1e-9)
    logits = fused.activations(x)["c"].reshape(2, -1).astype(np.float64) @ fused.layers[-1].weights[0]
    np.testing.assert_allclose(a.scores, logits[[0, 1], [1, 2]] + fused.layers[-1].weights[1][[1, 2]], rtol=1e-5)
