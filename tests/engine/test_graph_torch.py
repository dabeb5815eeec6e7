"""Graph models against PyTorch: the same weights give the same forward outputs and the
same gradients (every weight and the input), max abs diff <= 1e-5, on a residual and an
Inception-like (concatenating) network. PyTorch is not a dependency: skipped without it.

Run with the environment that has it, e.g.
    PYTHONPATH=/work/main /tmp/venvC/bin/python -m pytest tests/engine/test_graph_torch.py
"""

import sys

import numpy as np
import pytest

from visualcnn.engine import Input, Model, layers as L

torch = pytest.importorskip("torch")
F = torch.nn.functional

TOL = 1e-5


def residual_network():
    inputs = Input(shape=(12, 12, 3))
    x = L.Conv2D(8, 3, padding="same")(inputs)
    x = L.BatchNormalization()(x)
    stem = L.Activation("relu")(x)
    y = L.Conv2D(8, 3, padding="same")(stem)
    y = L.BatchNormalization()(y)
    y = L.Activation("relu")(y)
    y = L.Conv2D(8, 3, padding="same")(y)
    y = L.BatchNormalization()(y)
    x = L.Add()([stem, y])  # the skip
    x = L.Activation("relu")(x)
    x = L.MaxPooling2D()(x)
    z = L.Conv2D(12, 3, padding="same", activation="relu")(x)
    z = L.Conv2D(12, 3, padding="same")(z)
    x = L.Add()([L.Conv2D(12, 1)(x), z])  # projection shortcut
    x = L.Activation("relu")(x)
    x = L.GlobalAveragePooling2D()(x)
    return Model(inputs, L.Dense(5, activation="softmax")(x), name="residual")


def inception_network():
    inputs = Input(shape=(10, 10, 2))
    stem = L.Conv2D(6, 3, padding="same", activation="relu")(inputs)
    b1 = L.Conv2D(4, 1, activation="relu")(stem)
    b2 = L.Conv2D(3, 1, activation="relu")(stem)
    b2 = L.Conv2D(5, 3, padding="same", activation="relu")(b2)
    b3 = L.MaxPooling2D(3, strides=1, padding="same")(stem)
    b3 = L.Conv2D(2, 1)(b3)
    b3 = L.Activation("relu")(b3)
    x = L.Concatenate()([b1, b2, b3])
    x = L.AveragePooling2D(2)(x)
    x = L.Conv2D(6, 3, padding="same")(x)
    x = L.BatchNormalization()(x)
    x = L.Activation("relu")(x)
    x = L.Flatten()(x)
    x = L.Dense(16, activation="relu")(x)
    return Model(inputs, L.Dense(4, activation="softmax")(x), name="inception")


def torch_layer(layer, ins, params, training=True):
    """One layer in PyTorch (float64, NCHW feature maps)."""
    a, c, kind, p = ins[0], layer.config, layer.class_name, f"{layer.name}/"
    if kind == "Conv2D":
        y = F.conv2d(a, params[p + "kernel"].permute(3, 2, 0, 1), params[p + "bias"], padding=c["padding"])
    elif kind == "BatchNormalization":
        stats = (None, None) if training else (params[p + "moving_mean"], params[p + "moving_variance"])
        y = F.batch_norm(a, *stats, params[p + "gamma"], params[p + "beta"], training=training, eps=c["epsilon"])
    elif kind == "Activation":
        y = F.relu(a)
    elif kind == "Add":
        y = ins[0] + ins[1]
    elif kind == "Concatenate":
        y = torch.cat(ins, dim=1)
    elif kind == "MaxPooling2D":
        if c["padding"] == "same":  # 3x3 stride 1: one pixel each side
            a = F.pad(a, (1, 1, 1, 1), value=-float("inf"))
        y = F.max_pool2d(a, c["pool_size"], c["strides"] or c["pool_size"])
    elif kind == "AveragePooling2D":
        y = F.avg_pool2d(a, c["pool_size"], c["strides"] or c["pool_size"])
    elif kind == "GlobalAveragePooling2D":
        y = a.mean(dim=(2, 3))
    elif kind == "Flatten":
        y = a.permute(0, 2, 3, 1).reshape(a.shape[0], -1)  # channels last, as Keras
    elif kind == "Dense":
        y = a @ params[p + "kernel"] + params[p + "bias"]
    else:
        raise AssertionError(kind)
    if c.get("activation") == "relu" and kind != "Activation":
        y = F.relu(y)
    return y


def torch_forward(model, x, params, training=True):
    """The model's graph in PyTorch; returns the logits (softmax belongs to the loss)."""
    outs = {-1: x.permute(0, 3, 1, 2)}
    for i, layer in enumerate(model.layers):
        outs[i] = torch_layer(layer, [outs[j] for j in model.inbound[i]], params, training)
    return outs[len(model.layers) - 1]


def compare(model, batch=6, seed=0):
    rng = np.random.default_rng(seed)
    model.build(seed=seed)
    model.compile("adam", "sparse_categorical_crossentropy")
    # non-zero biases and BN shifts, so every parameter matters
    model.set_weights([w + rng.normal(0, 0.1, w.shape).astype(np.float32) for w in model.get_weights()])
    x = rng.random((batch, *model.input_shape), dtype=np.float32)
    y = rng.integers(0, model.output_shape[-1], batch)

    names = [f"{layer.name}/{spec.name}" for layer in model.layers for spec in layer.weight_specs if spec.trainable]
    params = {n: torch.tensor(w.astype(np.float64), requires_grad=True)
              for n, w in zip(names, model.trainable_weights)}
    tx = torch.tensor(x.astype(np.float64), requires_grad=True)
    logits = torch_forward(model, tx, params)
    loss = F.cross_entropy(logits, torch.tensor(y))
    loss.backward()

    # training-mode forward and backward, the input gradient too (model internals:
    # compute_gradients does not return it)
    loss_ours, grads = model.compute_gradients(x, y)
    assert abs(loss_ours - loss.item()) <= TOL
    assert len(grads) == len(names) > 0
    for name, g in zip(names, grads):
        diff = np.abs(g - params[name].grad.numpy()).max()
        assert diff <= TOL, f"{name}: max abs diff {diff}"
    ctxs = model._train_ctxs
    out = model._forward(x, ctxs, training=True)
    np.testing.assert_allclose(out, F.softmax(logits, dim=1).detach().numpy(), atol=TOL, rtol=0)
    _, dloss, fused = model._loss_and_grad(out, y, ctxs)
    dx = model._backward(dloss, ctxs, fused, need_input_grad=True)
    diff = np.abs(dx - tx.grad.numpy()).max()
    assert diff <= TOL, f"input gradient: max abs diff {diff}"
    return model


def test_residual_network_matches_pytorch():
    model = compare(residual_network())
    assert sum(layer.class_name == "Add" for layer in model.layers) == 2


def test_inception_network_matches_pytorch():
    model = compare(inception_network(), seed=1)
    assert not model.analyse().is_linear


def test_inference_matches_pytorch_with_moving_statistics():
    """predict (streaming arenas, BN folded into the conv before it) equals PyTorch's eval."""
    model = residual_network()
    model.build(seed=2)
    rng = np.random.default_rng(2)
    specs = [spec.name for layer in model.layers for spec in layer.weight_specs]
    weights = [w + rng.normal(0, 0.1, w.shape).astype(np.float32) for w in model.get_weights()]
    weights = [np.abs(w) if name == "moving_variance" else w for name, w in zip(specs, weights)]
    model.set_weights(weights)
    x = rng.random((300, 12, 12, 3), dtype=np.float32)
    params = {f"{layer.name}/{spec.name}": torch.tensor(w.astype(np.float64))
              for layer in model.layers for spec, w in zip(layer.weight_specs, layer.weights)}
    want = F.softmax(torch_forward(model, torch.tensor(x.astype(np.float64)), params, training=False), dim=1)
    for batch in (128, 1):
        got = model.predict(x[:128] if batch == 1 else x, batch_size=batch)
        np.testing.assert_allclose(got, want.numpy()[:got.shape[0]], atol=TOL, rtol=0)
    acts = model.activations(x[:2])
    assert list(acts) == [layer.name for layer in model.layers]
    np.testing.assert_allclose(acts[model.layers[-1].name], want.numpy()[:2], atol=TOL, rtol=0)


def random_graph(seed):
    """A random graph of 3x3 'same' convs (relu or linear), BatchNormalization, relu,
    'same' max pooling and every merge layer, ending in global pooling and softmax."""
    import random

    rnd = random.Random(seed)
    inputs = Input(shape=(7, 7, 2))
    pool = [inputs]
    for _ in range(rnd.randint(4, 9)):
        kind = rnd.choice(["conv", "conv", "bn", "relu", "pool", "merge", "merge", "merge", "merge", "concat"])
        src = rnd.choice(pool)
        if kind == "conv":
            t = L.Conv2D(rnd.choice([3, 4]), 3, padding="same", activation=rnd.choice(["relu", "linear"]))(src)
        elif kind == "bn":
            t = L.BatchNormalization()(src)
        elif kind == "relu":
            t = L.Activation("relu")(src)
        elif kind == "pool":
            t = L.MaxPooling2D(3, strides=1, padding="same")(src)
        elif kind == "concat":
            t = L.Concatenate()(rnd.sample(pool, min(len(pool), rnd.randint(2, 3))))
        else:
            same = [p for p in pool if p.shape == src.shape and p is not src]
            if not same:
                continue
            name = rnd.choice(["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"])
            others = [src, rnd.choice(same)]
            if name not in ("Subtract", "Maximum", "Minimum") and rnd.random() < 0.3:
                others.append(rnd.choice(pool if all(p.shape == src.shape for p in pool) else same))
            t = getattr(L, name)()(others)
        pool.append(t)
    # every tensor nothing reads yet joins the output, so no block is left unused
    read = {id(p) for t in pool for p in t.inputs}
    leaves = [L.GlobalAveragePooling2D()(t) for t in pool[1:] if id(t) not in read] or \
        [L.GlobalAveragePooling2D()(L.Conv2D(3, 3, padding="same")(inputs))]
    x = leaves[0] if len(leaves) == 1 else L.Concatenate()(leaves)
    return Model(inputs, L.Dense(3, activation="softmax")(x))


TORCH_MERGES = {"Subtract": lambda ins: ins[0] - ins[1],
                "Multiply": lambda ins: torch.stack(ins).prod(0),
                "Average": lambda ins: torch.stack(ins).mean(0),
                "Maximum": lambda ins: torch.stack(ins).max(0).values,
                "Minimum": lambda ins: torch.stack(ins).min(0).values}


@pytest.mark.parametrize("seed", range(16))
def test_random_graphs_match_pytorch(seed, monkeypatch):
    model = random_graph(seed)
    original = torch_layer

    def with_merges(layer, ins, params, training=True):
        if layer.class_name in TORCH_MERGES:
            return TORCH_MERGES[layer.class_name](ins)
        if layer.class_name == "Add":
            return torch.stack(ins).sum(0)
        return original(layer, ins, params, training)

    monkeypatch.setattr(sys.modules[__name__], "torch_layer", with_merges)
    compare(model, batch=4, seed=seed)
